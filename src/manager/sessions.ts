// Sessions of the traffic manager: each connected daemon holds one, identified by a random
// token that every tunnel stream must carry. A session not renewed within its lease expires.
import { randomBytes, randomUUID } from 'node:crypto';
import type { SessionGrant } from '../protocol/paths.ts';

export const LEASE_SECONDS = 30;

export class Sessions {
  private readonly expiries = new Map<string, number>();

  constructor(private readonly now: () => number = Date.now) {}

  open(): SessionGrant {
    const grant = {
      id: randomUUID(),
      token: randomBytes(32).toString('base64url'),
      leaseSeconds: LEASE_SECONDS,
    };
    this.expiries.set(grant.token, this.now() + LEASE_SECONDS * 1000);
    return grant;
  }

  /** True (and the lease renewed) when the token belongs to a live session. */
  touch(token: string | undefined): boolean {
    if (!token) return false;
    const expiry = this.expiries.get(token);
    if (expiry === undefined) return false;
    if (expiry < this.now()) {
      this.expiries.delete(token);
      return false;
    }
    this.expiries.set(token, this.now() + LEASE_SECONDS * 1000);
    return true;
  }
}
