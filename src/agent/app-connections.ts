// Connections the agent handed to the app, per port. Where a connection goes is decided when it
// is accepted, so a client's keep-alive connection that reached the app while a port was not
// intercepted (or while the manager was away) would keep going to the app for good. When a port
// becomes intercepted, its app connections are closed as soon as each is idle between requests
// — the app answered last and the client has sent nothing since — and the client's next request
// arrives on a new connection, which goes to the workstation. Only plain HTTP/1 request/response
// connections are handed over (an upgrade, a server-sent event stream or any other protocol
// stays with the app until it closes): there an answer is delimited by its length or chunks, so
// a close at the wrong moment is an error the client sees, never a silently shorter answer.
import type net from 'node:net';

/** The app answered and the client has been quiet this long: between requests. */
const ANSWERED_IDLE_MS = 60;
const HTTP1_REQUEST = /^[A-Z]{3,10} \S+ HTTP\/1\.[01]\r\n/;
const UPGRADE = /\r\nupgrade:/i;
const HTTP1_ANSWER = /^HTTP\/1\.[01] (?!101)\d{3} /;
const EVENT_STREAM = /\r\ncontent-type:\s*text\/event-stream/i;
/** How long a handover keeps looking for idle connections. */
const HANDOVER_MS = 60_000;

interface AppConnection {
  client: net.Socket;
  app: net.Socket;
  lastActivity: number;
  appSpokeLast: boolean;
  /** Plain HTTP/1 requests and answers, as their first bytes show (undefined: not seen yet). */
  http1?: boolean;
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
    client.on('data', (chunk: Buffer) => {
      if (connection.http1 === undefined) {
        const head = chunk.toString('latin1', 0, 4096);
        connection.http1 = HTTP1_REQUEST.test(head) && !UPGRADE.test(head);
      }
      touch(false);
    });
    let answered = false;
    app.on('data', (chunk: Buffer) => {
      if (!answered) {
        answered = true;
        const head = chunk.toString('latin1', 0, 4096);
        if (!HTTP1_ANSWER.test(head) || EVENT_STREAM.test(head)) connection.http1 = false;
      }
      touch(true);
    });
    client.once('close', () => set.delete(connection));
  }

  /** `port` is now intercepted: its app connections close once idle. */
  handOver(port: number): void {
    if (this.handovers.has(port) || !this.byPort.get(port)?.size) return;
    const until = Date.now() + HANDOVER_MS;
    const timer = setInterval(() => {
      const set = this.byPort.get(port) ?? new Set<AppConnection>();
      let waiting = 0;
      for (const connection of set) {
        if (connection.http1 === false) continue; // not ours to close: it stays until it ends
        const between = connection.appSpokeLast && Date.now() - connection.lastActivity >= ANSWERED_IDLE_MS;
        if (!connection.http1 || !between) {
          waiting++;
          continue;
        }
        set.delete(connection);
        connection.client.end();
        connection.app.end();
      }
      if (!waiting || Date.now() > until) this.stop(port);
    }, ANSWERED_IDLE_MS / 3);
    this.handovers.set(port, timer);
  }

  /** `port` is no longer intercepted: its app connections stay. */
  stop(port: number): void {
    clearInterval(this.handovers.get(port));
    this.handovers.delete(port);
  }
}
