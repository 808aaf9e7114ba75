// Sessions of the traffic manager: each connected daemon holds one, identified by a random
// token that every tunnel stream must carry. A session not renewed within its lease expires,
// and whoever listens to `onExpired` undoes what the session changed in the cluster.
import { randomBytes, randomUUID } from 'node:crypto';
import type { SessionGrant } from '../protocol/paths.ts';

export const LEASE_SECONDS = 30;

export interface SessionRecord {
  id: string;
  token: string;
  holder: string;
  expiry: number;
}

export class Sessions {
  private readonly byToken = new Map<string, SessionRecord>();
  private readonly sweeper: NodeJS.Timeout;
  onExpired: (session: SessionRecord) => void = () => undefined;

  constructor(private readonly now: () => number = Date.now) {
    this.sweeper = setInterval(() => this.sweep(), 2000).unref();
  }

  /** A new session, or the same one again when a reconnecting daemon presents a live token. */
  open(holder: string, resumeToken?: string): SessionGrant {
    const live = resumeToken ? this.touch(resumeToken) : undefined;
    if (live && resumeToken) return { id: live.id, token: resumeToken, leaseSeconds: LEASE_SECONDS };
    const grant = {
      id: randomUUID(),
      token: randomBytes(32).toString('base64url'),
      leaseSeconds: LEASE_SECONDS,
    };
    this.byToken.set(grant.token, {
      id: grant.id,
      token: grant.token,
      holder,
      expiry: this.now() + LEASE_SECONDS * 1000,
    });
    return grant;
  }

  /** The live session of this token, with its lease renewed; undefined when there is none. */
  touch(token: string | undefined): SessionRecord | undefined {
    const session = token ? this.byToken.get(token) : undefined;
    if (!session || session.expiry < this.now()) return undefined;
    session.expiry = this.now() + LEASE_SECONDS * 1000;
    return session;
  }

  /** Forgets a session now (the daemon said goodbye); the caller undoes what it changed. */
  end(token: string): void {
    this.byToken.delete(token);
  }

  sweep(): void {
    for (const [token, session] of this.byToken) {
      if (session.expiry >= this.now()) continue;
      this.byToken.delete(token);
      this.onExpired(session);
    }
  }

  close(): void {
    clearInterval(this.sweeper);
  }
}
