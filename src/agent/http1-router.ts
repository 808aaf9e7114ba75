// HTTP/1.1 on a routed port: Node's HTTP server machinery reads the client's connection
// (keep-alive, pipelining, chunked bodies, 100-continue), and each request goes, over pooled
// keep-alive connections, to the app or to the workstation its route names, while mirrors get a
// copy. An upgrade (WebSocket) or a CONNECT takes the rest of its connection, raw, to where its
// request goes.
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { PortRoute } from '../protocol/intercept.ts';
import { failureText, MIRROR_TIMEOUT_MS, splice, type RouterContext } from './route-context.ts';
import type { RequestView } from './route-match.ts';

/** Headers that only concern one hop, besides those the Connection header names. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection'];
/** Framing, which the Connection header does not get to remove. */
const FRAMING = new Set(['content-length', 'transfer-encoding']);
/** Methods whose request Node's client sends without a body when no length is given. */
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);
/** Request and response heads up to this size pass (Node's default is 16 KiB). */
const MAX_HEADER_SIZE = 64 * 1024;
/** How long a client connection may stay idle between requests. */
const CLIENT_KEEP_ALIVE_MS = 65_000;

/** Routes the requests of HTTP/1 client connections. */
export class Http1Router {
  private readonly server = http.createServer({
    maxHeaderSize: MAX_HEADER_SIZE,
    requireHostHeader: false,
    requestTimeout: 0,
  });
  private readonly pools = new Map<string | undefined, Pool>();

  constructor(private readonly context: RouterContext) {
    this.server.keepAliveTimeout = CLIENT_KEEP_ALIVE_MS;
    const forward = (req: http.IncomingMessage, res: http.ServerResponse) => this.forward(req, res);
    this.server.on('request', forward);
    this.server.on('checkContinue', forward);
    this.server.on('checkExpectation', forward);
    const tunnel = (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
      this.tunnel(req, socket, head);
    this.server.on('upgrade', tunnel);
    this.server.on('connect', tunnel);
  }

  /** Serves a client connection (paused, its first bytes unread) until it closes. */
  serve(client: Duplex): void {
    this.server.emit('connection', client);
    client.resume();
  }

  /** Closes idle upstream connections now, busy ones once their request is done. */
  close(): void {
    for (const pool of this.pools.values()) pool.retire();
    this.pools.clear();
  }

  private pool(intercept: string | undefined): Pool {
    let pool = this.pools.get(intercept);
    if (!pool) {
      pool = new Pool(() => this.context.connect(intercept));
      this.pools.set(intercept, pool);
    }
    return pool;
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.sendDate = false;
    const { take, mirrors } = this.context.choose(view(req));
    const intercept = take?.intercept;
    const headers = endToEnd(req.rawHeaders);
    const method = req.method ?? 'GET';
    const framed =
      req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
    const bodyless = !req.headers['transfer-encoding'] && Number(req.headers['content-length'] ?? 0) === 0;
    // Node's client would send such a request chunked: an empty body is better said by length.
    if (!framed && !BODYLESS_METHODS.has(method)) headers.push('Content-Length', '0');
    if (mirrors.length) this.mirror(req, method, headers, bodyless, mirrors);

    let upstream: http.ClientRequest | undefined;
    res.once('close', () => {
      if (!res.writableFinished) upstream?.destroy();
    });
    const send = (retry: boolean) => {
      let request: http.ClientRequest;
      try {
        request = upstream = http.request({
          agent: this.pool(intercept),
          method,
          path: req.url,
          headers,
          maxHeaderSize: MAX_HEADER_SIZE,
        });
      } catch (err) {
        return reply502(res, failureText(intercept, (err as Error).message));
      }
      request.on('continue', () => {
        if (!res.headersSent) res.writeContinue();
      });
      request.on('response', (answer) => answerWith(answer, req, res, intercept));
      request.on('error', (err) => {
        // The rest of the body goes nowhere, but off the client's connection, for its next request.
        req.unpipe(request);
        req.resume();
        if (res.headersSent) return; // the answer's own end tells the client
        // A kept-alive connection the far end closed as it was reused: a request without a
        // body is sent again, on a new connection.
        if (retry && bodyless && request.reusedSocket) return send(false);
        reply502(res, failureText(intercept, err.message));
      });
      if (bodyless) return void request.end();
      req.pipe(request, { end: false });
      req.once('end', () => {
        try {
          if (req.rawTrailers.length) request.addTrailers(pairs(req.rawTrailers));
          request.end();
        } catch (err) {
          request.destroy(err as Error);
        }
      });
    };
    send(true);
  }

  /** Sends a copy of the request to each mirror once its body has arrived; answers are discarded. */
  private mirror(
    req: http.IncomingMessage,
    method: string,
    headers: string[],
    bodyless: boolean,
    mirrors: PortRoute[],
  ): void {
    const copyHeaders = pairs(headers)
      .filter(([name]) => name.toLowerCase() !== 'expect')
      .flat();
    const send = (body: Buffer | undefined) => {
      if (body) for (const { intercept } of mirrors) this.copy(intercept, method, req.url, copyHeaders, body);
    };
    if (bodyless) send(Buffer.alloc(0));
    else this.context.collectBody(req, send);
  }

  private copy(
    intercept: string,
    method: string,
    path: string | undefined,
    headers: string[],
    body: Buffer,
  ): void {
    const free = this.context.mirrorSlot(intercept);
    if (!free) return;
    let copy: http.ClientRequest;
    try {
      copy = http.request({
        agent: this.pool(intercept),
        method,
        path,
        headers,
        maxHeaderSize: MAX_HEADER_SIZE,
      });
    } catch (err) {
      free();
      return this.context.mirrorFailed(intercept, (err as Error).message);
    }
    const timer = setTimeout(() => copy.destroy(new Error('no answer in time')), MIRROR_TIMEOUT_MS).unref();
    copy.on('response', (answer) => answer.on('error', () => undefined).resume());
    copy.on('error', (err) => this.context.mirrorFailed(intercept, err.message));
    copy.once('close', () => {
      clearTimeout(timer);
      free();
    });
    copy.end(body);
  }

  /** An upgrade or CONNECT: the rest of the connection goes raw to where the request goes. */
  private tunnel(req: http.IncomingMessage, client: Duplex, head: Buffer): void {
    client.on('error', () => undefined); // splice ends the upstream side
    if (client instanceof net.Socket) client.setTimeout(0); // no keep-alive timeout any more
    const intercept = this.context.choose(view(req)).take?.intercept;
    const upstream = this.context.connect(intercept);
    const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
    for (const [name, value] of pairs(req.rawHeaders)) lines.push(`${name}: ${value}`);
    upstream.write(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
    if (head.length) upstream.write(head);
    splice(client, upstream, (reason) => failureText(intercept, reason));
  }
}

/**
 * A keep-alive pool of connections to one destination, each opened by `open`. The streams it
 * gets need not be sockets (an HTTP/2 stream through the manager): what Node's agent calls on a
 * socket and they lack does nothing.
 */
class Pool extends http.Agent {
  private retired = false;

  constructor(private readonly open: () => Duplex) {
    super({ keepAlive: true });
  }

  override createConnection(): Duplex {
    const stream = this.open();
    if (!(stream instanceof net.Socket)) {
      // Node's HTTP client writes a request's head as a latin1 string, corked with its body: an
      // HTTP/2 stream's writev of strings and buffers together sent a garbled head (Node 20), so
      // streams that are not sockets (the manager's CONNECT streams) take one chunk at a time.
      Object.assign(stream, { _writev: null });
      // The pool refs and unrefs its sockets; a stream may have no such methods.
      if (!('ref' in stream)) Object.assign(stream, { ref: () => undefined, unref: () => undefined });
    }
    // The far end closed it (an idle one, typically): so do we, and the pool forgets it.
    stream.once('end', () => stream.end());
    return stream;
  }

  override keepSocketAlive(): boolean {
    return !this.retired;
  }

  /** Closes the idle connections now, and each busy one once its request is done. */
  retire(): void {
    this.retired = true;
    for (const sockets of Object.values(this.freeSockets))
      for (const socket of sockets ?? []) socket.destroy();
  }
}

/** Answers the client with `answer`, the upstream's response. */
function answerWith(
  answer: http.IncomingMessage,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  intercept: string | undefined,
): void {
  // Node frames the answer itself (chunked, or by its length); an HTTP/1.0 client gets no trailers.
  const dropped = req.httpVersion === '1.0' ? ['transfer-encoding', 'trailer'] : ['transfer-encoding'];
  try {
    res.writeHead(answer.statusCode ?? 502, answer.statusMessage ?? '', endToEnd(answer.rawHeaders, dropped));
  } catch (err) {
    answer.destroy();
    return reply502(res, failureText(intercept, `its answer is unusable: ${(err as Error).message}`));
  }
  answer.on('error', () => res.destroy());
  answer.once('close', () => {
    if (!answer.complete) res.destroy();
  });
  answer.pipe(res, { end: false });
  answer.once('end', () => {
    try {
      if (answer.rawTrailers.length) res.addTrailers(pairs(answer.rawTrailers));
      res.end();
    } catch {
      res.destroy();
    }
  });
}

/** Answers the client with a 502 and `text`, or cuts its connection when its answer has begun. */
function reply502(res: http.ServerResponse, text: string): void {
  if (res.destroyed) return;
  if (res.headersSent) return void res.destroy();
  res.writeHead(502, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

/** Routing's view of an HTTP/1 request: a repeated header also matches by its joined value. */
function view(req: http.IncomingMessage): RequestView {
  return {
    method: req.method ?? '',
    path: req.url ?? '/',
    header(name) {
      const values = pairs(req.rawHeaders)
        .filter(([field]) => field.toLowerCase() === name)
        .map(([, value]) => value);
      return values.length > 1 ? [...values, values.join(', ')] : values;
    },
  };
}

/** `raw` (name, value, name, value…) without hop-by-hop headers and those named in `dropped`. */
function endToEnd(raw: readonly string[], dropped: readonly string[] = []): string[] {
  const fields = pairs(raw);
  const drop = new Set([...HOP_BY_HOP, ...dropped]);
  for (const [name, value] of fields) {
    if (name.toLowerCase() !== 'connection') continue;
    for (const token of value.split(',')) {
      const named = token.trim().toLowerCase();
      if (named && !FRAMING.has(named)) drop.add(named);
    }
  }
  return fields.filter(([name]) => !drop.has(name.toLowerCase())).flat();
}

/** A flat list of names and values as pairs. */
function pairs(raw: readonly string[]): [string, string][] {
  const result: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) result.push([raw[i] ?? '', raw[i + 1] ?? '']);
  return result;
}
