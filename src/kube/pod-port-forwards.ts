// Port-forward connections to pods, one per pod, shared by every TCP connection the daemon
// sends to that pod (a stream pair each, as kubectl does). A connection unused for a while is
// closed; one that ended is opened again by the next caller.
import type { KubeConfig } from '@kubernetes/client-node';
import type { Duplex } from 'node:stream';
import { openPortForwardSession, type PortForwardSession } from './portforward.ts';

/** How long a pod's port-forward stays open with no connection on it. */
const IDLE_MS = 30_000;

interface Pooled {
  opening: Promise<PortForwardSession>;
  streams: number;
  idle?: NodeJS.Timeout | undefined;
}

/** The daemon's port-forwards to pods, one per pod, each shared by that pod's connections. */
export class PodPortForwards {
  private readonly pods = new Map<string, Pooled>();
  private closed = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly idleMs = IDLE_MS,
  ) {}

  /**
   * A connection to `port` of the pod, on its shared port-forward (opened first if needed).
   * Rejects when the port-forward cannot be opened (no rights, pod gone, API server down).
   */
  async connect(namespace: string, pod: string, port: number): Promise<Duplex> {
    if (this.closed) throw new Error('closed');
    const key = `${namespace}/${pod}`;
    let pooled = this.pods.get(key);
    if (!pooled) {
      const opening = openPortForwardSession(this.kc, namespace, pod, port);
      const entry: Pooled = { opening, streams: 0 };
      pooled = entry;
      this.pods.set(key, entry);
      opening.then(
        (session) => {
          session.onClose(() => this.drop(key, entry));
          if (this.closed) session.close();
        },
        () => this.drop(key, entry),
      );
    }
    const session = await pooled.opening;
    if (session.closed) {
      this.drop(key, pooled);
      throw new Error(`the port-forward to ${key} ended`);
    }
    clearTimeout(pooled.idle);
    pooled.streams++;
    const stream = session.connect(port);
    const entry = pooled;
    stream.once('close', () => {
      if (--entry.streams > 0 || this.pods.get(key) !== entry) return;
      entry.idle = setTimeout(() => {
        this.drop(key, entry);
        session.close();
      }, this.idleMs).unref();
    });
    return stream;
  }

  /** Closes every pod's port-forward; their connections end with them. */
  close(): void {
    this.closed = true;
    for (const [key, pooled] of this.pods) {
      this.drop(key, pooled);
      pooled.opening.then((s) => s.close()).catch(() => undefined);
    }
  }

  private drop(key: string, entry: Pooled): void {
    clearTimeout(entry.idle);
    if (this.pods.get(key) === entry) this.pods.delete(key);
  }
}
