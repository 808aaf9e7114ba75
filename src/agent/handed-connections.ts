// Connections the agent handed to one side — the app, or the workstation through the manager —
// per port. Where a connection goes is decided when it is accepted, so a client's keep-alive
// connection would keep going to the side it first reached for good. When a port changes sides
// (becomes intercepted, or its intercept ends and the agent stays dormant), the connections of
// the old side are closed as soon as each is idle between requests — that side answered last and
// the client has sent nothing since — and the client's next request arrives on a new
// connection, which goes to the new side. Only plain HTTP/1 request/response connections are
// handed over (an upgrade, a server-sent event stream or any other protocol stays until it
// closes): there an answer is delimited by its length or chunks, so a close at the wrong moment
// is an error the client sees, never a silently shorter answer.
import type { Duplex } from 'node:stream';
import type net from 'node:net';

/** The upstream answered and the client has been quiet this long: between requests. */
const ANSWERED_IDLE_MS = 60;
const HTTP1_REQUEST = /^[A-Z]{3,10} \S+ HTTP\/1\.[01]\r\n/;
const UPGRADE = /\r\nupgrade:/i;
const HTTP1_ANSWER = /^HTTP\/1\.[01] (?!101)\d{3} /;
const EVENT_STREAM = /\r\ncontent-type:\s*text\/event-stream/i;
/** How long a handover keeps looking for idle connections. */
const HANDOVER_MS = 60_000;

interface HandedConnection {
  client: net.Socket;
  /** The app's socket, or the stream to the workstation. */
  upstream: Duplex;
  lastActivity: number;
  upstreamSpokeLast: boolean;
  /** Plain HTTP/1 requests and answers, as their first bytes show (undefined: not seen yet). */
  http1?: boolean;
}

/** The connections one side serves, per port, and their handover to the other side. */
export class HandedConnections {
  private readonly byPort = new Map<number, Set<HandedConnection>>();
  private readonly handovers = new Map<number, NodeJS.Timeout>();

  /** Follows a client connection this side serves on `port` through `upstream`, until it closes. */
  add(port: number, client: net.Socket, upstream: Duplex): void {
    const connection: HandedConnection = {
      client,
      upstream,
      lastActivity: Date.now(),
      upstreamSpokeLast: false,
    };
    const set = this.byPort.get(port) ?? new Set();
    this.byPort.set(port, set);
    set.add(connection);
    const touch = (appSpoke: boolean) => {
      connection.lastActivity = Date.now();
      connection.upstreamSpokeLast = appSpoke;
    };
    client.on('data', (chunk: Buffer) => {
      if (connection.http1 === undefined) {
        const head = chunk.toString('latin1', 0, 4096);
        connection.http1 = HTTP1_REQUEST.test(head) && !UPGRADE.test(head);
      }
      touch(false);
    });
    let answered = false;
    upstream.on('data', (chunk: Buffer) => {
      if (!answered) {
        answered = true;
        const head = chunk.toString('latin1', 0, 4096);
        if (!HTTP1_ANSWER.test(head) || EVENT_STREAM.test(head)) connection.http1 = false;
      }
      touch(true);
    });
    client.once('close', () => set.delete(connection));
  }

  /** `port` now goes to the other side: this side's connections of it close once idle. */
  handOver(port: number): void {
    if (this.handovers.has(port) || !this.byPort.get(port)?.size) return;
    const until = Date.now() + HANDOVER_MS;
    const timer = setInterval(() => {
      const set = this.byPort.get(port) ?? new Set<HandedConnection>();
      let waiting = 0;
      for (const connection of set) {
        if (connection.http1 === false) continue; // not ours to close: it stays until it ends
        const between =
          connection.upstreamSpokeLast && Date.now() - connection.lastActivity >= ANSWERED_IDLE_MS;
        if (!connection.http1 || !between) {
          waiting++;
          continue;
        }
        set.delete(connection);
        connection.client.end();
        connection.upstream.end();
      }
      if (!waiting || Date.now() > until) this.stop(port);
    }, ANSWERED_IDLE_MS / 3);
    this.handovers.set(port, timer);
  }

  /** `port` comes back to this side: its connections stay. */
  stop(port: number): void {
    clearInterval(this.handovers.get(port));
    this.handovers.delete(port);
  }
}
