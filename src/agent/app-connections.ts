// Connections the agent handed to the app, per port. Where a connection goes is decided when it
// is accepted, so a client's keep-alive connection that reached the app while a port was not
// intercepted (or while the manager was away) would keep going to the app for good. When a port
// becomes intercepted, its app connections are therefore closed as soon as each is idle between
// requests — the app spoke last (its answer) and the client has sent nothing since — and the
// client's next request arrives on a new connection, which goes to the workstation. A
// connection that stays busy is left to finish.
import type net from 'node:net';

/** The app answered and the client has been quiet this long: between requests. */
const ANSWERED_IDLE_MS = 40;
/** Nothing moved either way for this long: idle whoever spoke last. */
const IDLE_MS = 1_000;
/** How long a handover keeps looking for idle connections. */
const HANDOVER_MS = 60_000;

interface AppConnection {
  client: net.Socket;
  app: net.Socket;
  lastActivity: number;
  appSpokeLast: boolean;
}

/** The app's connections of every port, and their handover to the workstation. */
export class AppConnections {
  private readonly byPort = new Map<number, Set<AppConnection>>();
  private readonly handovers = new Map<number, NodeJS.Timeout>();

  /** Follows a client connection the app serves on `port`, until it closes. */
  add(port: number, client: net.Socket, app: net.Socket): void {
    const connection: AppConnection = { client, app, lastActivity: Date.now(), appSpokeLast: false };
    const set = this.byPort.get(port) ?? new Set();
    this.byPort.set(port, set);
    set.add(connection);
    const touch = (appSpoke: boolean) => {
      connection.lastActivity = Date.now();
      connection.appSpokeLast = appSpoke;
    };
    client.on('data', () => touch(false));
    app.on('data', () => touch(true));
    client.once('close', () => set.delete(connection));
  }

  /** `port` is now intercepted: its app connections close once idle. */
  handOver(port: number): void {
    if (this.handovers.has(port) || !this.byPort.get(port)?.size) return;
    const until = Date.now() + HANDOVER_MS;
    const timer = setInterval(() => {
      const set = this.byPort.get(port) ?? new Set<AppConnection>();
      for (const connection of set) {
        const idle = Date.now() - connection.lastActivity;
        if (idle < (connection.appSpokeLast ? ANSWERED_IDLE_MS : IDLE_MS)) continue;
        set.delete(connection);
        connection.client.end();
        connection.app.end();
      }
      if (!set.size || Date.now() > until) this.stop(port);
    }, ANSWERED_IDLE_MS / 2);
    this.handovers.set(port, timer);
  }

  /** `port` is no longer intercepted: its app connections stay. */
  stop(port: number): void {
    clearInterval(this.handovers.get(port));
    this.handovers.delete(port);
  }
}
