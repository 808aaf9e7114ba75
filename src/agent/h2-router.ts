// HTTP/2 with prior knowledge (h2c, as gRPC speaks it) on a routed port: Node's HTTP/2 server
// takes the client's connection, and each stream goes to the app or to the workstation its route
// names (headers, body both ways with backpressure, trailers), over an HTTP/2 session of that
// client session's own per destination (so that one client's streams or GOAWAY never hold up or
// fail another's), while mirrors get a copy (over sessions per destination, shared).
import http2 from 'node:http2';
import type { Duplex } from 'node:stream';
import type { PortRoute } from '../protocol/intercept.ts';
import { endedCleanly, reset } from '../protocol/liveness.ts';
import { HTTP2_CONNECTION_WINDOW, HTTP2_SETTINGS } from '../protocol/paths.ts';
import { failureText, MIRROR_TIMEOUT_MS, takeSlots, type RouterContext } from './route-context.ts';
import type { RequestView } from './route-match.ts';

const { NGHTTP2_CANCEL } = http2.constants;
/** Connection-specific headers, which HTTP/2 forbids. */
const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);
/** An option of `respond()` missing from Node's types: no Date header beyond the upstream's. */
const NO_DATE = { sendDate: false };

/** Routes the streams of h2c client connections. */
export class H2Router {
  private readonly server = http2.createServer();
  /** Mirror copies' sessions, shared by all client sessions. */
  private readonly sessions: Sessions = new Map();
  /** Each client session's own sessions upstream: one client's streams never hold up another's. */
  private readonly clients = new Map<http2.Http2Session, Sessions>();

  constructor(private readonly context: RouterContext) {
    this.server.on('session', (client: http2.ServerHttp2Session) => {
      const sessions: Sessions = new Map();
      this.clients.set(client, sessions);
      client.once('close', () => {
        this.clients.delete(client);
        for (const session of sessions.values()) session.close();
        sessions.clear();
      });
    });
    // Node passes the raw headers too (not in its types): they keep repeated fields apart.
    this.server.on(
      'stream',
      (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, _flags: number, raw: string[]) =>
        this.forward(stream, headers, raw),
    );
  }

  /** Serves a client connection (paused, its preface unread) until it closes. */
  serve(client: Duplex): void {
    this.server.emit('connection', client);
  }

  /** Closes the upstream sessions once their streams are done; new streams open new ones. */
  close(): void {
    for (const sessions of [this.sessions, ...this.clients.values()]) {
      for (const session of sessions.values()) session.close();
      sessions.clear();
    }
  }

  /** The session to `intercept` (undefined: the app) in `sessions`, opened if need be. */
  private session(intercept: string | undefined, sessions = this.sessions): http2.ClientHttp2Session {
    const existing = sessions.get(intercept);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    // A workstation is a round trip away: large windows, as on the manager connection itself.
    const far = intercept !== undefined;
    const session = http2.connect('http://localhost', {
      createConnection: () => this.context.connect(intercept),
      settings: { ...(far && HTTP2_SETTINGS), enablePush: false },
    });
    if (far) session.once('connect', () => session.setLocalWindowSize(HTTP2_CONNECTION_WINDOW));
    const forget = () => {
      if (sessions.get(intercept) === session) sessions.delete(intercept);
    };
    session.on('error', forget); // its streams fail with it, and answer for it
    session.once('goaway', forget);
    session.once('close', forget);
    sessions.set(intercept, session);
    return session;
  }

  private forward(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, raw: string[]): void {
    stream.on('error', () => undefined); // its close ends the upstream stream
    const { take, mirrors } = this.context.choose(view(headers, raw));
    const intercept = take?.intercept;
    const outgoing = endToEnd(headers);
    if (outgoing[':authority'] === undefined && typeof headers.host === 'string')
      outgoing[':authority'] = headers.host;
    if (mirrors.length) this.mirror(stream, outgoing, mirrors);

    const bodyless = stream.endAfterHeaders;
    let upstream: http2.ClientHttp2Stream;
    try {
      const sessions = this.clients.get(stream.session as http2.Http2Session);
      if (!sessions) throw new Error('the client session is closed');
      upstream = this.session(intercept, sessions).request(outgoing, {
        endStream: bodyless,
        waitForTrailers: !bodyless,
      });
    } catch (err) {
      return fail(stream, failureText(intercept, (err as Error).message));
    }
    let reason = 'the stream was reset';
    let complete = false;
    upstream.on('error', (err: Error) => (reason = err.message));
    upstream.on('headers', (informational) => {
      try {
        stream.additionalHeaders(endToEnd(informational));
      } catch {
        // the client is gone, or it cannot take this 1xx: the final answer follows anyway
      }
    });
    upstream.once('response', (answer) => {
      try {
        if (upstream.endAfterHeaders) {
          // Headers only, ending the stream (a gRPC trailers-only answer, say).
          complete = true;
          return stream.respond(endToEnd(answer), { ...NO_DATE, endStream: true });
        }
        stream.respond(endToEnd(answer), { ...NO_DATE, waitForTrailers: true });
      } catch {
        return reset(upstream, 'cancel');
      }
      relay(upstream, stream, () => (complete = true));
    });
    upstream.once('close', () => {
      if (!stream.headersSent) fail(stream, failureText(intercept, reason));
      else if (!complete) reset(stream, upstream.rstCode === NGHTTP2_CANCEL ? 'cancel' : 'error');
    });
    // A client gone before the app's answer ended cancels it (one that ended cleanly has it all).
    stream.once('close', () => {
      if (!upstream.closed && !endedCleanly(stream)) reset(upstream, 'cancel');
    });
    if (bodyless) stream.resume();
    else relay(stream, upstream);
  }

  /** Sends a copy of the stream's request to each mirror once its body has arrived. */
  private mirror(
    stream: http2.ServerHttp2Stream,
    headers: http2.OutgoingHttpHeaders,
    mirrors: PortRoute[],
  ): void {
    // Slots first: a body is held only for mirrors that take a copy.
    const slots = takeSlots(this.context, mirrors);
    if (!slots.length) return;
    const send = (body: Buffer | undefined) => {
      for (const [intercept, free] of slots) {
        if (body) this.copy(intercept, headers, body, free);
        else free();
      }
    };
    if (stream.endAfterHeaders) send(Buffer.alloc(0));
    else this.context.collectBody(stream, send);
  }

  private copy(intercept: string, headers: http2.OutgoingHttpHeaders, body: Buffer, free: () => void): void {
    let copy: http2.ClientHttp2Stream;
    try {
      copy = this.session(intercept).request(headers, { endStream: body.length === 0 });
    } catch (err) {
      free();
      return this.context.mirrorFailed(intercept, (err as Error).message);
    }
    const timer = setTimeout(() => copy.close(NGHTTP2_CANCEL), MIRROR_TIMEOUT_MS).unref();
    copy.on('error', (err: Error) => this.context.mirrorFailed(intercept, err.message));
    copy.once('close', () => {
      clearTimeout(timer);
      free();
    });
    copy.resume(); // its answer is discarded
    if (body.length) copy.end(body);
  }
}

/** Sessions upstream by intercept (undefined: the app). */
type Sessions = Map<string | undefined, http2.ClientHttp2Session>;

/**
 * Pipes the body of `from` into `to`, created with `waitForTrailers`, then the trailers of
 * `from` if any (else the end of the stream); `ended` is called when `from` has ended. A `from`
 * reset (Node emits 'end' on a CANCEL, its rstCode already set) resets `to` alike, never ends it.
 */
function relay(from: http2.Http2Stream, to: http2.Http2Stream, ended?: () => void): void {
  let trailers: http2.OutgoingHttpHeaders = {};
  from.once('trailers', (received: http2.IncomingHttpHeaders) => (trailers = endToEnd(received)));
  from.once('end', () => {
    if (from.rstCode) return reset(to, from.rstCode === NGHTTP2_CANCEL ? 'cancel' : 'error');
    ended?.();
    to.end();
  });
  to.once('wantTrailers', () => {
    try {
      to.sendTrailers(trailers); // none: an empty DATA frame ends the stream
    } catch {
      reset(to);
    }
  });
  from.pipe(to, { end: false });
}

/** Answers a stream with a 502 and `text`, or resets it when its answer has begun. */
function fail(stream: http2.ServerHttp2Stream, text: string): void {
  if (stream.closed || stream.destroyed) return;
  if (stream.headersSent) return reset(stream);
  try {
    stream.respond(
      { ':status': 502, 'content-type': 'text/plain; charset=utf-8' },
      { ...NO_DATE, endStream: false },
    );
    stream.end(text);
    stream.resume(); // the rest of the request is not wanted
  } catch {
    reset(stream);
  }
}

/** Routing's view of an HTTP/2 request. */
function view(headers: http2.IncomingHttpHeaders, raw: string[]): RequestView {
  const pseudo = (name: string) => {
    const value = headers[name];
    return typeof value === 'string' ? value : '';
  };
  return {
    method: pseudo(':method'),
    path: pseudo(':path'),
    header(name) {
      const values: string[] = [];
      for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i] === name) values.push(raw[i + 1] ?? '');
      return values;
    },
  };
}

/** `headers` without connection-specific ones (and without `te` other than `trailers`). */
function endToEnd(headers: http2.IncomingHttpHeaders): http2.OutgoingHttpHeaders {
  const result: http2.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || CONNECTION_SPECIFIC.has(name) || (name === 'te' && value !== 'trailers'))
      continue;
    result[name] = value;
  }
  return result;
}
