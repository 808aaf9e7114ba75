// Sessions kept where they outlive the manager's pod: one coordination.k8s.io Lease per session
// in the manager's namespace, holding the session's id, its holder and the sha256 of its token
// (never the token), signed with the install's key. A restarted manager reads them back and
// keeps those sessions, so that their daemons resume them; `kubectl get leases -n telepod`
// shows who is connected and when each last renewed.
import { createHash } from 'node:crypto';
import * as z from 'zod/mini';
import { MANAGED_BY, SESSION_LABEL } from '../protocol/intercept.ts';
import { isNotFound, type KubeApi, type KubeObject } from './kube-api.ts';
import type { Signer } from './signer.ts';

const TOKEN_HASH_ANNOTATION = 'telepod.io/token-sha256';
const LEASE_MAC_ANNOTATION = 'telepod.io/session-mac';
const LEASE_PREFIX = 'telepod-session-';

/** What survives of a session: never its token, only the token's hash. */
export interface StoredSession {
  id: string;
  holder: string;
  tokenHash: string;
}

/** The hash a session's token is known by in the cluster. */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}

const StoredSessionSchema = z.object({
  id: z.uuid(),
  holder: z.string().check(z.minLength(1), z.maxLength(256)),
  tokenHash: z.string().check(z.length(43)),
});

type Lease = KubeObject & {
  spec?: { holderIdentity?: string; leaseDurationSeconds?: number; renewTime?: string; acquireTime?: string };
};

/** Where sessions are kept across manager restarts; unit tests keep them in memory only. */
export interface SessionStore {
  load(): Promise<StoredSession[]>;
  save(session: StoredSession, leaseSeconds: number): Promise<void>;
  renew(id: string): Promise<void>;
  remove(id: string): Promise<void>;
}

/** A time in the MicroTime format Leases use. */
const microTime = (ms: number) => new Date(ms).toISOString().replace(/Z$/, '000Z');

/** Sessions as Leases in the manager's namespace. */
export class LeaseSessionStore implements SessionStore {
  constructor(
    private readonly api: KubeApi,
    private readonly namespace: string,
    private readonly signer: Signer,
    private readonly log: (message: string) => void,
  ) {}

  private path(id?: string): string {
    const base = `/apis/coordination.k8s.io/v1/namespaces/${this.namespace}/leases`;
    return id === undefined ? base : `${base}/${LEASE_PREFIX}${id}`;
  }

  private static signed(session: StoredSession): string {
    return JSON.stringify([session.id, session.holder, session.tokenHash]);
  }

  /** The signed sessions found; a Lease that is not one is logged and left alone. */
  async load(): Promise<StoredSession[]> {
    const leases = await this.api.list<Lease>(
      `${this.path()}?labelSelector=${encodeURIComponent('app.kubernetes.io/managed-by=telepod')}`,
    );
    const sessions: StoredSession[] = [];
    for (const lease of leases) {
      const name = lease.metadata?.name ?? '';
      if (!name.startsWith(LEASE_PREFIX)) continue;
      const parsed = StoredSessionSchema.safeParse({
        id: name.slice(LEASE_PREFIX.length),
        holder: lease.spec?.holderIdentity,
        tokenHash: lease.metadata?.annotations?.[TOKEN_HASH_ANNOTATION],
      });
      if (!parsed.success) {
        this.log(`ignoring Lease ${name}: not a session's`);
        continue;
      }
      if (
        !this.signer.verify(
          LeaseSessionStore.signed(parsed.data),
          lease.metadata?.annotations?.[LEASE_MAC_ANNOTATION],
        )
      ) {
        this.log(`ignoring Lease ${name}: not signed by this install`);
        continue;
      }
      sessions.push(parsed.data);
    }
    return sessions;
  }

  async save(session: StoredSession, leaseSeconds: number): Promise<void> {
    const now = microTime(Date.now());
    await this.api.create(this.path(), {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: `${LEASE_PREFIX}${session.id}`,
        labels: { ...MANAGED_BY, [SESSION_LABEL]: session.id },
        annotations: {
          [TOKEN_HASH_ANNOTATION]: session.tokenHash,
          [LEASE_MAC_ANNOTATION]: this.signer.sign(LeaseSessionStore.signed(session)),
        },
      },
      spec: {
        holderIdentity: session.holder,
        leaseDurationSeconds: leaseSeconds,
        acquireTime: now,
        renewTime: now,
      },
    });
  }

  async renew(id: string): Promise<void> {
    await this.api.mergePatch(this.path(id), { spec: { renewTime: microTime(Date.now()) } });
  }

  async remove(id: string): Promise<void> {
    await this.api.remove(this.path(id)).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }
}
