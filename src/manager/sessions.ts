// Sessions of the traffic manager: each connected daemon holds one, identified by a random
// token that every tunnel stream must carry. A session not renewed within its lease expires,
// and whoever listens to `onExpired` undoes what the session changed in the cluster. With a
// store (session-leases.ts), sessions outlive the manager's pod: a restarted manager takes
// them back and gives each one lease to be resumed by its daemon.
import { randomBytes, randomUUID } from 'node:crypto';
import type { SessionGrant } from '../protocol/paths.ts';
import { tokenHash, type SessionStore, type StoredSession } from './session-leases.ts';

/**
 * How long a session lives without a renewal. The daemon renews every LEASE_SECONDS / 4, so a
 * session survives three lost renewals; a daemon killed with -9 is undone about this long after.
 */
export const LEASE_SECONDS = 20;
/** The cluster's copy of a lease is brought up to date at most this often. */
const STORE_RENEWAL_MS = 10_000;

export interface SessionRecord {
  id: string;
  /** The token, once its daemon presented it to this manager (a taken-back session's is unknown until then). */
  token: string;
  holder: string;
  expiry: number;
}

interface Held extends SessionRecord {
  tokenHash: string;
  storedAt: number;
}

export class Sessions {
  private readonly byHash = new Map<string, Held>();
  private readonly sweeper: NodeJS.Timeout;
  onExpired: (session: SessionRecord) => void = () => undefined;

  constructor(
    private readonly store?: SessionStore,
    private readonly log: (message: string) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.sweeper = setInterval(() => this.sweep(), 1000).unref();
  }

  /**
   * Takes back the sessions an earlier manager kept. They do not expire until `serving()`:
   * their daemons cannot renew before this manager listens. Answers their ids.
   */
  async takeBack(): Promise<Set<string>> {
    const stored = this.store ? await this.store.load() : [];
    for (const session of stored) {
      this.byHash.set(session.tokenHash, { ...session, token: '', expiry: Infinity, storedAt: this.now() });
      this.renewStored(session.id);
    }
    return new Set(stored.map((s) => s.id));
  }

  /** The manager listens: each taken-back session has one lease from now to be resumed. */
  serving(): void {
    for (const session of this.byHash.values()) {
      if (session.expiry === Infinity) session.expiry = this.now() + LEASE_SECONDS * 1000;
    }
  }

  private renewStored(id: string): void {
    this.store
      ?.renew(id)
      .catch((err: Error) => this.log(`cannot renew the Lease of session ${id}: ${err.message}`));
  }

  /** A new session, or the same one again when a reconnecting daemon presents a live token. */
  async open(holder: string, resumeToken?: string): Promise<SessionGrant> {
    const live = resumeToken ? this.touch(resumeToken) : undefined;
    if (live && resumeToken) return { id: live.id, token: resumeToken, leaseSeconds: LEASE_SECONDS };
    const token = randomBytes(32).toString('base64url');
    const stored: StoredSession = { id: randomUUID(), holder, tokenHash: tokenHash(token) };
    await this.store?.save(stored, LEASE_SECONDS);
    const now = this.now();
    this.byHash.set(stored.tokenHash, {
      ...stored,
      token,
      expiry: now + LEASE_SECONDS * 1000,
      storedAt: now,
    });
    return { id: stored.id, token, leaseSeconds: LEASE_SECONDS };
  }

  /** The live session of this token, with its lease renewed; undefined when there is none. */
  touch(token: string | undefined): SessionRecord | undefined {
    const session = token ? this.byHash.get(tokenHash(token)) : undefined;
    if (!token || !session || session.expiry < this.now()) return undefined;
    session.token = token;
    session.expiry = this.now() + LEASE_SECONDS * 1000;
    if (this.now() - session.storedAt >= STORE_RENEWAL_MS) {
      session.storedAt = this.now();
      this.renewStored(session.id);
    }
    return session;
  }

  /** Forgets a session now (the daemon said goodbye); the caller undoes what it changed. */
  end(token: string): void {
    const hash = tokenHash(token);
    const session = this.byHash.get(hash);
    if (!session) return;
    this.byHash.delete(hash);
    this.forget(session);
  }

  private forget(session: Held): void {
    this.store
      ?.remove(session.id)
      .catch((err: Error) => this.log(`cannot delete the Lease of session ${session.id}: ${err.message}`));
  }

  sweep(): void {
    for (const [hash, session] of this.byHash) {
      if (session.expiry >= this.now()) continue;
      this.byHash.delete(hash);
      this.forget(session);
      this.onExpired(session);
    }
  }

  close(): void {
    clearInterval(this.sweeper);
  }
}
