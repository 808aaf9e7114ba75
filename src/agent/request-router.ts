// Per-request routing on a port with personal (filtered) intercepts and mirrors. The first bytes
// of a client connection tell its protocol: HTTP/2 with prior knowledge (h2c) goes to the HTTP/2
// router, an HTTP/1 request line to the HTTP/1 router, and each request (or stream) then goes to
// the app or to the workstation of the first route that matches it, mirrors getting a copy of
// what the app answers. Anything else — TLS, a database protocol, a client that says nothing
// for a second (the server speaks first) — goes whole to the app: a filtered intercept never
// takes what it cannot read.
//
// Limitations:
// - TLS is not terminated: HTTPS and gRPC over TLS reach the app whole, unfiltered. So does a
//   connection whose first request has a method Node's HTTP parser does not know.
// - The protocol is decided once per connection, and an upgrade (WebSocket, h2c upgrade) or a
//   CONNECT takes the rest of its connection to where its own request goes, unmirrored, once
//   the far end agreed (101; 2xx to a CONNECT): any other answer is passed on and the client's
//   connection closed. Bytes the client sends after an upgrade's head (a body) go upstream only
//   after the 101.
// - A client that says nothing, to an app that says nothing either, is cut off after 30 s.
// - A client silent for a second gets a connection to the app opened, in case the app speaks
//   first; if the client then sends HTTP, the app sees that connection close unused.
// - HTTP/1: Node's parser is strict (a malformed request gets a 400 the app might have
//   tolerated); heads up to 64 KiB; requests go upstream as HTTP/1.1; informational answers
//   other than 100 Continue (102, 103) are not passed on; an HTTP/1.0 client gets no trailers;
//   a client's FIN aborts its requests in flight (as with Node, nginx or Go behind it); a client
//   connection is closed when a complete request head takes over 30 s to come (after it
//   connected or after its last answer: idle connections too). Each client connection's
//   requests go one at a time (pipelined ones are read ahead by at most 64), over its own
//   upstream connection per destination, closed with it.
// - HTTP/2: each client session has its own upstream session per destination.
// - An HTTP/1 request without a body is sent again once when a kept-alive upstream connection
//   turns out to be closed as it is reused; one with a body gets a 502.
// - HTTP/2: extended CONNECT (RFC 8441) is not offered; server push is refused.
// - Mirrors get a copy once the request's body has arrived, without its trailers; a body over
//   1 MiB or taking over 30 s to arrive, copies beyond 32 in flight (body being received
//   included) per intercept and copies unanswered in 30 s are dropped.
import http from 'node:http';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { PortRoute } from '../protocol/intercept.ts';
import { H2Router } from './h2-router.ts';
import { HEAD_TIMEOUT_MS, Http1Router } from './http1-router.ts';
import { RouterContext, splice } from './route-context.ts';

export { chooseRoutes } from './route-match.ts';

/**
 * Where routed traffic can go. Both return a Duplex at once (writes before it is connected are
 * fine); a failure is an 'error' event or the stream ending/closing early.
 */
export interface RouteTargets {
  /** A new TCP connection to the app's own port in the pod. */
  app(): Duplex;
  /**
   * A new byte stream to the workstation of intercept `id` (in production an HTTP/2 CONNECT
   * stream through the manager; the far end is the developer's local server, which speaks
   * whatever the client spoke: HTTP/1.1, h2c, WebSocket).
   */
  workstation(id: string): Duplex;
}

/** The client connection preface of HTTP/2. */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
/** An HTTP/1 request line (without its line feed), with a method Node's parser knows. */
const REQUEST_LINE = /^([A-Z][A-Z0-9_-]{0,31}) [^ \r\n]+ HTTP\/1\.[01]\r?$/;
const METHODS = new Set(http.METHODS);
/** The start of what may still become one. */
const PARTIAL_REQUEST_LINE = /^[A-Z][A-Z0-9_-]{0,31}(?: [^ \r\n]*(?: [A-Z0-9/.]{0,8}\r?)?)?$/;
const MAX_REQUEST_LINE = 8192;
/** A client silent this long may be waiting for the server to speak first. */
const SILENT_CLIENT_MS = 1_000;

type Protocol = 'h2' | 'http1' | 'other';

/** The protocol the first bytes of a connection show, or undefined while they could still be HTTP. */
function protocolOf(bytes: Buffer): Protocol | undefined {
  const preface = PREFACE.subarray(0, Math.min(bytes.length, PREFACE.length));
  if (bytes.subarray(0, preface.length).equals(preface))
    return bytes.length >= PREFACE.length ? 'h2' : undefined;
  const newline = bytes.indexOf(0x0a);
  if (newline >= 0) {
    const method = REQUEST_LINE.exec(bytes.toString('latin1', 0, newline))?.[1];
    return method && METHODS.has(method) ? 'http1' : 'other';
  }
  const partial = bytes.length < MAX_REQUEST_LINE && PARTIAL_REQUEST_LINE.test(bytes.toString('latin1'));
  return partial ? undefined : 'other';
}

/** Settings, for tests. */
export interface RouterOptions {
  /**
   * How long a client may take to send its first bytes (when the app does not speak first
   * either) and each complete HTTP/1 request head, after it connected or after its last answer.
   */
  headTimeoutMs?: number;
}

/** Routes the connections of one port, request by request. */
export class RequestRouter {
  private readonly context: RouterContext;
  private readonly headTimeoutMs: number;
  private readonly http1: Http1Router;
  private readonly h2: H2Router;

  /**
   * `routes()` is called per request and returns the port's current routes, already in the
   * order to try (first matching non-mirror route wins).
   */
  constructor(
    routes: () => PortRoute[],
    targets: RouteTargets,
    log: (message: string) => void,
    options: RouterOptions = {},
  ) {
    this.headTimeoutMs = options.headTimeoutMs ?? HEAD_TIMEOUT_MS;
    const connect = (intercept: string | undefined) =>
      intercept === undefined ? targets.app() : targets.workstation(intercept);
    this.context = new RouterContext(routes, connect, log);
    this.http1 = new Http1Router(this.context, this.headTimeoutMs);
    this.h2 = new H2Router(this.context);
  }

  /** Serves one accepted client connection of a routed port until it closes. */
  handle(client: net.Socket): void {
    client.on('error', () => undefined); // whoever serves the connection ends it on errors
    let peeked = Buffer.alloc(0);
    // Opened when the client stays silent: if the app speaks first, the connection is its own.
    let app: Duplex | undefined;
    let detecting = true;

    const serve = (protocol: Protocol, why?: string) => {
      detecting = false;
      clearTimeout(silence);
      clearTimeout(deadline);
      client.pause();
      client.off('data', onData);
      client.off('end', onEnd);
      client.off('close', onClose);
      if (protocol !== 'other') {
        app?.destroy();
        client.unshift(peeked);
        return protocol === 'h2' ? this.h2.serve(client) : this.http1.serve(client);
      }
      if (why) this.context.note('raw', `${why} goes to the app whole: only HTTP requests are routed`);
      const upstream = app ?? this.context.connect(undefined);
      if (peeked.length) upstream.write(peeked);
      splice(client, upstream);
    };
    const onData = (chunk: Buffer) => {
      peeked = Buffer.concat([peeked, chunk]);
      const protocol = protocolOf(peeked);
      if (protocol === 'other') serve(protocol, peeked[0] === 0x16 ? 'TLS' : 'a protocol other than HTTP');
      else if (protocol) serve(protocol);
    };
    const onEnd = () => serve('other', peeked.length ? 'a connection ended before its request' : undefined);
    const onClose = () => {
      detecting = false;
      clearTimeout(silence);
      clearTimeout(deadline);
      app?.destroy();
    };
    // Neither the client nor the app said enough in time: the connection is given up.
    const deadline = setTimeout(() => client.destroy(), this.headTimeoutMs).unref();
    const silence = setTimeout(() => {
      const opened = (app = this.context.connect(undefined));
      const forget = () => {
        if (app === opened && detecting) app = undefined;
      };
      opened.once('data', (chunk: Buffer) => {
        if (!detecting) return;
        opened.pause();
        opened.unshift(chunk);
        serve('other', 'a protocol where the server speaks first');
      });
      opened.on('error', forget);
      opened.once('close', forget);
    }, SILENT_CLIENT_MS);
    client.on('data', onData);
    client.once('end', onEnd);
    client.once('close', onClose);
  }

  /** The bytes of request bodies held now to be copied to mirrors. */
  get mirrorBytesHeld(): number {
    return this.context.heldForMirrors;
  }

  /** Closes idle pooled upstream connections (called when the port's routes change or the agent stops). */
  close(): void {
    this.http1.close();
    this.h2.close();
  }
}
