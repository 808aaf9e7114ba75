// Keeps the daemon's tunnel up: when the port-forward drops (manager pod deleted, API server
// restarted, connection cut), it dials again until it succeeds, so new connections work once
// the manager is back; connections that were open on the old tunnel end with it. A redial
// presents the session's token, so a manager that still knows the session (the same one, or a
// new one that took it back from its Lease) resumes it, intercepts included. What it saw is
// kept for `status`: since when the tunnel is down, and why.
import type { Logger } from 'pino';
import type { Tunnel } from './tunnel.ts';

/** The tunnel as `status` reports it. */
export interface TunnelState {
  up: boolean;
  /** While down: since when (ms since the epoch), and the last redial's error. */
  downSince?: number;
  lastError?: string;
}

export class TunnelKeeper {
  reconnects = 0;
  private closed = false;
  private downSince: number | undefined;
  private lastError: string | undefined;

  /** Called with every new tunnel after the first, and whether it resumed the session. */
  onTunnel: (tunnel: Tunnel, resumed: boolean) => void = () => undefined;

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

  get state(): TunnelState {
    if (this.downSince === undefined) return { up: true };
    return { up: false, downSince: this.downSince, ...(this.lastError ? { lastError: this.lastError } : {}) };
  }

  private watch(): void {
    this.tunnel.onClose((reason) => void this.redial(reason));
  }

  private async redial(reason: string): Promise<void> {
    if (this.closed) return;
    this.log.warn({ reason }, 'tunnel to the traffic manager closed; reconnecting');
    const downSince = Date.now();
    this.downSince = downSince;
    let attempt = 0;
    while (!this.closed) {
      try {
        const previous = this.tunnel.grant;
        const dialed = await this.dial(previous.token);
        // Closed while dialling (the daemon quits): this tunnel would hold the session open.
        if (this.closed) return dialed.close();
        this.tunnel = dialed;
        this.reconnects++;
        const resumed = this.tunnel.grant.id === previous.id;
        this.log.info(
          { reconnects: this.reconnects, resumed, downMs: Date.now() - downSince },
          'tunnel reconnected',
        );
        this.downSince = undefined;
        this.lastError = undefined;
        this.watch();
        this.onTunnel(this.tunnel, resumed);
        return;
      } catch (err) {
        this.lastError = (err as Error).message;
        this.log.warn({ err: this.lastError }, 'reconnect failed; retrying');
        // Quickly at first (a restart takes seconds), then at most every 5 s.
        await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** attempt++, 5000)));
      }
    }
  }

  close(): void {
    this.closed = true;
    this.tunnel.close();
  }
}
