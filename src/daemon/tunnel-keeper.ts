// Keeps the daemon's tunnel up: when the port-forward drops (manager pod deleted, API server
// restarted), it dials again until it succeeds, so new connections work once the manager is
// back; connections that were open on the old tunnel end with it.
import type { Logger } from 'pino';
import type { Tunnel } from './tunnel.ts';

export class TunnelKeeper {
  reconnects = 0;
  private closed = false;

  private constructor(
    private tunnel: Tunnel,
    private readonly dial: () => Promise<Tunnel>,
    private readonly log: Logger,
  ) {
    this.watch();
  }

  static async start(dial: () => Promise<Tunnel>, log: Logger): Promise<TunnelKeeper> {
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
        this.tunnel = await this.dial();
        this.reconnects++;
        this.log.info({ reconnects: this.reconnects }, 'tunnel reconnected');
        this.watch();
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
