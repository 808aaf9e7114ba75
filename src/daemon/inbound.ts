// The workstation's end of intercepts: the session's intercepts, and for each inbound
// connection the manager announces, a connection to the intercepted local port spliced to a
// stream back to the agent. Only ports of this session's own intercepts are ever dialled.
// The agent takes connections for an intercept as soon as the manager registered it, a moment
// before the manager's answer reaches the daemon; and it may have taken one just before a leave
// took effect. So a connection for an intercept not known yet waits for it (up to
// UNKNOWN_GRACE_MS), and one for an intercept just left is still served for as long: both were
// reset before, a cluster client's request lost at an intercept's start or end. While an
// intercept request is out, its local ports are expected: the manager may relay the cold
// intercept's connections during its rollout (src/manager/relay.ts), long before its answer,
// and those are served at once.
import net from 'node:net';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import { parseInboundEvent, type InboundEvent, type InterceptInfo } from '../protocol/intercept.ts';
import { abort, endedCleanly, reset } from '../protocol/liveness.ts';
import { MANAGER_PATHS } from '../protocol/paths.ts';
import type { Tunnel } from './tunnel.ts';

/** A connection to `port` on this network namespace's loopback, once it is established. */
export function connectLoopback(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: 'localhost', port, noDelay: true, allowHalfOpen: true });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

/** How long a connection for an intercept not (or no longer) known is held (or still served). */
export const UNKNOWN_GRACE_MS = 3000;
/** Connections held at most at once for intercepts not known yet; more are refused. */
const MAX_WAITING = 1000;

interface Waiting {
  tunnel: Tunnel;
  event: InboundEvent;
  timer: NodeJS.Timeout;
}

export class InboundHandler {
  private readonly intercepts = new Map<string, InterceptInfo>();
  /** Intercepts left within the grace time, by id. */
  private readonly left = new Map<string, InterceptInfo>();
  /** Connections for intercepts not known yet, by intercept id. */
  private readonly waiting = new Map<string, Waiting[]>();
  private waitingCount = 0;
  /** Local ports of intercept requests not answered yet, each with how many ask for it. */
  private readonly expected = new Map<number, number>();

  constructor(
    private readonly log: Logger,
    /** Connects to an intercepted local port (in rootless mode: inside the namespace). */
    private readonly connectLocal: (port: number) => Promise<net.Socket> = connectLoopback,
    private readonly graceMs = UNKNOWN_GRACE_MS,
  ) {}

  get all(): InterceptInfo[] {
    return [...this.intercepts.values()];
  }

  /** Knows the intercept from now on; connections waiting for it are served. */
  add(info: InterceptInfo): void {
    this.intercepts.set(info.id, info);
    this.left.delete(info.id);
    const waiting = this.waiting.get(info.id) ?? [];
    this.waiting.delete(info.id);
    this.waitingCount -= waiting.length;
    for (const { tunnel, event, timer } of waiting) {
      clearTimeout(timer);
      this.accept(tunnel, event);
    }
  }

  /**
   * Serves connections for `ports` before their intercept is known, until the returned function
   * is called (when the manager's answer, or its refusal, has come).
   */
  expect(ports: number[]): () => void {
    for (const port of ports) this.expected.set(port, (this.expected.get(port) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      for (const port of ports) {
        const left = (this.expected.get(port) ?? 0) - 1;
        if (left > 0) this.expected.set(port, left);
        else this.expected.delete(port);
      }
    };
  }

  /**
   * Whether every one of `ports` accepts a connection now: each is opened and ended at once
   * (closed as a client would, not reset; anything the server sends is dropped), then let go.
   */
  async accepting(ports: number[]): Promise<boolean> {
    const tries = await Promise.allSettled(ports.map((port) => this.connectLocal(port)));
    for (const tried of tries) {
      if (tried.status !== 'fulfilled') continue;
      // Let go a second later: closing at once would reset a server that greets (SMTP, SSH).
      const socket = tried.value
        .on('error', () => undefined)
        .resume()
        .end();
      setTimeout(() => socket.destroy(), 1000).unref();
    }
    return tries.every((tried) => tried.status === 'fulfilled');
  }

  /** Forgets the intercept; connections the agent took before the leave are served a while. */
  remove(id: string): void {
    const info = this.intercepts.get(id);
    if (!this.intercepts.delete(id) || !info) return;
    this.left.set(id, info);
    setTimeout(() => this.left.get(id) === info && this.left.delete(id), this.graceMs).unref();
  }

  /** Follows a tunnel's event stream until that tunnel closes. */
  follow(tunnel: Tunnel): void {
    createInterface({ input: tunnel.inboundEvents() })
      .on('error', () => undefined) // ends with the tunnel; the next tunnel follows anew
      .on('line', (line) => {
        const event = parseInboundEvent(line);
        if (event) this.accept(tunnel, event);
        else this.log.warn({ line: line.slice(0, 200) }, 'malformed inbound event ignored');
      });
  }

  private refuse(tunnel: Tunnel, event: InboundEvent, reason: string): void {
    this.log.debug({ conn: event.conn, reason }, 'inbound connection refused');
    tunnel.call(MANAGER_PATHS.inboundRefused, { conn: event.conn, reason }).catch(() => undefined);
  }

  private accept(tunnel: Tunnel, event: InboundEvent): void {
    this.log.debug(event, 'inbound connection');
    const info = this.intercepts.get(event.intercept) ?? this.left.get(event.intercept);
    if (!info && !this.expected.has(event.local)) return this.wait(tunnel, event);
    if (info && !info.ports.some((p) => p.local === event.local)) {
      return this.refuse(tunnel, event, `port ${event.local} is not intercepted by this workstation`);
    }
    this.connectLocal(event.local).then(
      (local) => {
        if (info) delete info.warning;
        local.on('error', () => local.destroy());
        // A tunnel closed meanwhile throws at once: that too only ends the local connection.
        Promise.resolve()
          .then(() => tunnel.inbound(event.conn))
          .then(
            (stream) => {
              // Reset, or closed, while the manager paired the stream: the cluster client is reset.
              if (local.destroyed) return reset(stream);
              stream.on('error', () => undefined); // its close resets the local connection
              local.pipe(stream);
              stream.pipe(local);
              stream.once('close', () => {
                if (!endedCleanly(stream)) abort(local);
              });
              local.once('error', () => reset(stream));
            },
            () => local.destroy(),
          );
      },
      (err: NodeJS.ErrnoException) => {
        const warning = `nothing accepts connections on localhost:${event.local} (${err.code ?? err.message}); cluster clients get their connections reset`;
        if (info) info.warning = warning;
        this.log.warn({ intercept: info?.workload ?? event.intercept, port: event.local }, warning);
        this.refuse(tunnel, event, warning);
      },
    );
  }

  /** Holds a connection for an intercept the manager's answer has not brought yet. */
  private wait(tunnel: Tunnel, event: InboundEvent): void {
    if (this.waitingCount >= MAX_WAITING) {
      return this.refuse(tunnel, event, `intercept ${event.intercept} is not known on this workstation`);
    }
    const timer = setTimeout(() => {
      const list = this.waiting.get(event.intercept) ?? [];
      const rest = list.filter((w) => w.event !== event);
      if (rest.length) this.waiting.set(event.intercept, rest);
      else this.waiting.delete(event.intercept);
      this.waitingCount -= list.length - rest.length;
      this.refuse(tunnel, event, `intercept ${event.intercept} is not known on this workstation`);
    }, this.graceMs);
    timer.unref();
    const list = this.waiting.get(event.intercept) ?? [];
    list.push({ tunnel, event, timer });
    this.waiting.set(event.intercept, list);
    this.waitingCount++;
  }
}
