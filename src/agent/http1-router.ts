// HTTP/1.1 on a routed port: Node's HTTP server machinery reads the client's connection
// (keep-alive, pipelining, chunked bodies, 100-continue), and each request goes, one at a time
// per client connection and over that connection's own kept-alive upstream connections, to the
// app or to the workstation its route names, while mirrors get a copy. An upgrade (WebSocket)
// or a CONNECT takes the rest of its connection, raw, to where its request goes, once agreed.
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { PortRoute } from '../protocol/intercept.ts';
import { answerWith, endToEnd, headOf, pairs, reply502, view } from './http1-messages.ts';
import { Pool, prepare } from './http1-pool.ts';
import { ParseGate } from './parse-gate.ts';
import {
  failClient,
  failureText,
  MIRROR_TIMEOUT_MS,
  splice,
  takeSlots,
  type RouterContext,
} from './route-context.ts';

/** Methods whose request Node's client sends without a body when no length is given. */
const BODYLESS_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);
/** Request and response heads up to this size pass (Node's default is 16 KiB). */
const MAX_HEADER_SIZE = 64 * 1024;
/** How long a client connection may take to send a complete request head (after it connects, or after the last answer). */
export const HEAD_TIMEOUT_MS = 30_000;
/** Requests of one client connection parsed and waiting for the one before them to be answered. */
const MAX_QUEUED = 64;

/** One client connection: its requests, handled one at a time, and its own upstream connections. */
class Conversation {
  readonly gate: ParseGate;
  private readonly queue: (() => void)[] = [];
  private busy = false;
  private readonly pools = new Map<string | undefined, Pool>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    client: Duplex,
    private readonly context: RouterContext,
    private readonly headTimeoutMs: number,
  ) {
    this.gate = new ParseGate(client, () => this.queue.length === 0);
    this.gate.on('error', () => undefined); // Node's server, or a tunnel, ends it
    this.gate.once('close', () => {
      clearTimeout(this.timer);
      this.queue.length = 0;
      for (const pool of this.pools.values()) pool.destroy();
      this.pools.clear();
    });
    this.awaitHead();
  }

  /** Runs `task` (a request's whole handling) after the requests before it; it calls `done` when answered. */
  enqueue(task: () => void): void {
    clearTimeout(this.timer);
    if (this.queue.length >= MAX_QUEUED) return void this.gate.destroy();
    this.queue.push(task);
    this.next();
  }

  /** The request being handled is answered: on to the next one. */
  done(): void {
    this.busy = false;
    this.next();
  }

  /** The connection to `intercept`'s workstation (undefined: the app) of this client connection. */
  pool(intercept: string | undefined): Pool {
    let pool = this.pools.get(intercept);
    if (!pool) {
      pool = new Pool(() => this.context.connect(intercept), 1);
      this.pools.set(intercept, pool);
    }
    return pool;
  }

  /** Closes idle upstream connections now, busy ones once their request is done. */
  retire(): void {
    for (const pool of this.pools.values()) pool.retire();
    this.pools.clear();
  }

  private next(): void {
    if (this.busy || this.gate.destroyed) return;
    const task = this.queue.shift();
    if (task) {
      this.busy = true;
      task();
    } else this.awaitHead();
    this.gate.pump();
  }

  /** The client has so long to send its next complete request head. */
  private awaitHead(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.gate.destroy(), this.headTimeoutMs).unref();
  }
}

/** Routes the requests of HTTP/1 client connections. */
export class Http1Router {
  private readonly server = http.createServer({
    maxHeaderSize: MAX_HEADER_SIZE,
    requireHostHeader: false,
    requestTimeout: 0,
  });
  /** Mirror copies' connections, shared by all client connections. */
  private readonly pools = new Map<string | undefined, Pool>();
  private readonly conversations = new Map<Duplex, Conversation>();

  constructor(
    private readonly context: RouterContext,
    private readonly headTimeoutMs = HEAD_TIMEOUT_MS,
  ) {
    // Node tells clients (Keep-Alive: timeout=…) how long an idle connection stays open.
    this.server.keepAliveTimeout = headTimeoutMs;
    const handle = (req: http.IncomingMessage, task: () => void) => {
      const conversation = this.conversations.get(req.socket);
      if (conversation) conversation.enqueue(task);
      else req.socket.destroy();
    };
    const forward = (req: http.IncomingMessage, res: http.ServerResponse) =>
      handle(req, () => this.forward(req, res));
    this.server.on('request', forward);
    this.server.on('checkContinue', forward);
    this.server.on('checkExpectation', forward);
    const tunnel = (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
      handle(req, () => this.tunnel(req, socket, head));
    this.server.on('upgrade', tunnel);
    this.server.on('connect', tunnel);
  }

  /** Serves a client connection (paused, its first bytes unread) until it closes. */
  serve(client: Duplex): void {
    const conversation = new Conversation(client, this.context, this.headTimeoutMs);
    this.conversations.set(conversation.gate, conversation);
    conversation.gate.once('close', () => this.conversations.delete(conversation.gate));
    this.server.emit('connection', conversation.gate);
  }

  /** Closes idle upstream connections now, busy ones once their request is done. */
  close(): void {
    for (const pool of this.pools.values()) pool.retire();
    this.pools.clear();
    for (const conversation of this.conversations.values()) conversation.retire();
  }

  /** The pool of mirror copies to `intercept`. */
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

    const conversation = this.conversations.get(req.socket);
    let upstream: http.ClientRequest | undefined;
    res.once('close', () => {
      if (!res.writableFinished) upstream?.destroy();
      conversation?.done();
    });
    const send = (retry: boolean) => {
      let request: http.ClientRequest;
      try {
        request = upstream = http.request({
          agent: conversation?.pool(intercept) ?? this.pool(intercept),
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
    // Slots first: a body is held only for mirrors that take a copy.
    const slots = takeSlots(this.context, mirrors);
    if (!slots.length) return;
    const send = (body: Buffer | undefined) => {
      for (const [intercept, free] of slots) {
        if (body) this.copy(intercept, method, req.url, copyHeaders, body, free);
        else free();
      }
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
    free: () => void,
  ): void {
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

  /**
   * An upgrade or CONNECT: the request goes to where its route says, and only once the far end
   * agreed (101 to an upgrade, 2xx to a CONNECT) does the rest of the connection go there raw.
   * Any other answer goes to the client, whose connection then closes: its next requests must
   * be routed on their own, never follow this one.
   */
  private tunnel(req: http.IncomingMessage, client: Duplex, head: Buffer): void {
    client.on('error', () => undefined); // splice or the end of the answer ends it
    if (client instanceof net.Socket || client instanceof ParseGate) client.setTimeout(0); // no keep-alive timeout any more
    const intercept = this.context.choose(view(req)).take?.intercept;
    const method = req.method ?? 'GET';
    const fail = (reason: string) => {
      if (!client.writable) return void client.destroy();
      const text = failureText(intercept, reason);
      client.end(
        `HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\n` +
          `content-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`,
      );
    };
    let upstream: http.ClientRequest;
    try {
      upstream = http.request({
        createConnection: () => prepare(this.context.connect(intercept)),
        method,
        path: req.url,
        headers: req.rawHeaders.slice(),
        setHost: false,
        maxHeaderSize: MAX_HEADER_SIZE,
      });
    } catch (err) {
      return fail((err as Error).message);
    }
    let answered = false;
    client.once('close', () => {
      if (!answered) upstream.destroy();
    });
    upstream.on('error', (err) => {
      if (!answered) fail(err.message);
    });
    const agreed = (answer: http.IncomingMessage, socket: Duplex, upstreamHead: Buffer) => {
      answered = true;
      const status = answer.statusCode ?? 0;
      const ok = method === 'CONNECT' ? status >= 200 && status < 300 : status === 101;
      if (!ok) return refused(answer, socket, upstreamHead);
      client.write(headOf(answer), 'latin1');
      if (upstreamHead.length) client.write(upstreamHead);
      if (head.length) socket.write(head);
      splice(client, socket);
    };
    // A CONNECT's answer, whatever its status, comes as 'connect' with the raw rest of the
    // connection (an upgrade's only when it is a 101): a refusal's body is what follows.
    const refused = (answer: http.IncomingMessage, socket: Duplex, upstreamHead: Buffer) => {
      // Its body, if any, is whatever the far end sends until it closes (or the client does).
      client.write(headOf(answer, ['content-length', 'transfer-encoding']), 'latin1');
      if (upstreamHead.length) client.write(upstreamHead);
      socket.on('error', () => failClient(client));
      socket.pipe(client);
      client.once('close', () => socket.destroy());
      client.resume(); // whatever else it sends is not wanted
    };
    upstream.on('upgrade', agreed);
    upstream.on('connect', agreed);
    upstream.on('response', (answer) => {
      // Not an upgrade: the answer, with its body, goes to the client, which may not go on.
      answered = true;
      // Unframed (no length), its body ends with the connection.
      client.write(headOf(answer, ['transfer-encoding']), 'latin1');
      answer.on('error', () => failClient(client));
      answer.pipe(client);
      client.once('close', () => answer.destroy());
      client.resume(); // whatever else it sends is not wanted
    });
    upstream.end();
  }
}
