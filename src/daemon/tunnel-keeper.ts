// Keeps the daemon's tunnel up: when the port-forward drops (manager pod deleted, API server
// restarted), it dials again until it succeeds, so new connections work once the manager is
// back; connections that were open on the old tunnel end with it. A redial presents the
// session's token, so a manager that still knows the session keeps it (and its intercepts).
import type { Logger } from 'pino';
import type { Tunnel } from './tunnel.ts';

export class TunnelKeeper {
  reconnects = 0;
  private closed = false;

  /** Called with every new tunnel, the first one included. */
  onTunnel: (tunnel: Tunnel) => void = () => undefined;

  private constructor(
    private tunnel: Tunnel,
    private readonly dial: (resumeToken?: string) => Promise<Tunnel>,
    private readonly log: Logger,
  ) {
    this.watch();
  }

  static async start(dial: (resumeToken?: string) => Promise<Tunnel>, log: Logger): Promise<TunnelKeeper> {
    return new TunnelKeeper(await dial(), dial, log);
  }

  get current(): Tunnel {
    return this.tunnel;
  }

  private watch(): void {
    this.tunnel.onClose(() => void this.redial());
  }

  private async redial(): Promise<void> {
    this.log.warn('tunnel to the traffic manager closed; reconnecting');
    while (!this.closed) {
      try {
        const previous = this.tunnel.grant;
        this.tunnel = await this.dial(previous.token);
        this.reconnects++;
        const resumed = this.tunnel.grant.id === previous.id;
        this.log.info({ reconnects: this.reconnects, resumed }, 'tunnel reconnected');
        this.watch();
        this.onTunnel(this.tunnel);
        return;
      } catch (err) {
        this.log.warn({ err: (err as Error).message }, 'reconnect failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  close(): void {
    this.closed = true;
    this.tunnel.close();
  }
}
