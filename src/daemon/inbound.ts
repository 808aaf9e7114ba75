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

export class InboundHandler {
  private readonly intercepts = new Map<string, InterceptInfo>();

  constructor(private readonly log: Logger) {}

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
    const local = net.connect({ host: 'localhost', port: event.local, noDelay: true, allowHalfOpen: true });
    local.once('error', (err) => {
      if (local.connecting || !local.remoteAddress) {
        info.warning = `nothing accepts connections on localhost:${event.local} (${(err as NodeJS.ErrnoException).code ?? err.message}); cluster clients get their connections reset`;
        this.log.warn({ intercept: info.workload, port: event.local }, info.warning);
        this.refuse(tunnel, event, info.warning);
      }
    });
    local.once('connect', () => {
      delete info.warning;
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
    });
  }
}
