// The workstation's end of intercepts: the session's intercepts, and for each inbound
// connection the manager announces, a connection to the intercepted local port spliced to a
// stream back to the agent. Only ports of this session's own intercepts are ever dialled.
import net from 'node:net';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import type { InboundEvent, InterceptInfo } from '../protocol/intercept.ts';
import { endedCleanly } from '../protocol/liveness.ts';
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

export class InboundHandler {
  private readonly intercepts = new Map<string, InterceptInfo>();

  constructor(
    private readonly log: Logger,
    /** Connects to an intercepted local port (in rootless mode: inside the namespace). */
    private readonly connectLocal: (port: number) => Promise<net.Socket> = connectLoopback,
  ) {}

  get all(): InterceptInfo[] {
    return [...this.intercepts.values()];
  }

  add(info: InterceptInfo): void {
    this.intercepts.set(info.id, info);
  }

  remove(id: string): void {
    this.intercepts.delete(id);
  }

  /** Follows a tunnel's event stream until that tunnel closes. */
  follow(tunnel: Tunnel): void {
    createInterface({ input: tunnel.inboundEvents() })
      .on('error', () => undefined) // ends with the tunnel; the next tunnel follows anew
      .on('line', (line) => this.accept(tunnel, JSON.parse(line) as InboundEvent));
  }

  private refuse(tunnel: Tunnel, event: InboundEvent, reason: string): void {
    this.log.debug({ conn: event.conn, reason }, 'inbound connection refused');
    tunnel.call(MANAGER_PATHS.inboundRefused, { conn: event.conn, reason }).catch(() => undefined);
  }

  private accept(tunnel: Tunnel, event: InboundEvent): void {
    this.log.debug(event, 'inbound connection');
    const info = this.intercepts.get(event.intercept);
    if (!info?.ports.some((p) => p.local === event.local)) {
      return this.refuse(tunnel, event, `port ${event.local} is not intercepted by this workstation`);
    }
    this.connectLocal(event.local).then(
      (local) => {
        delete info.warning;
        local.on('error', () => local.destroy());
        tunnel.inbound(event.conn).then(
          (stream) => {
            local.pipe(stream);
            stream.pipe(local);
            stream.once('close', () => {
              if (!endedCleanly(stream)) local.resetAndDestroy();
            });
            local.once('error', () => stream.destroy());
          },
          () => local.destroy(),
        );
      },
      (err: NodeJS.ErrnoException) => {
        info.warning = `nothing accepts connections on localhost:${event.local} (${err.code ?? err.message}); cluster clients get their connections reset`;
        this.log.warn({ intercept: info.workload, port: event.local }, info.warning);
        this.refuse(tunnel, event, info.warning);
      },
    );
  }
}
