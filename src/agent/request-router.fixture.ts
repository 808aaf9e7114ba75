// Test fixture for the request router's tests: servers standing for the app and for
// workstations that answer who they are, a listener in front whose connections a router
// handles, and clients for HTTP/1, HTTP/2 and raw sockets.
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { Duplex } from 'node:stream';
import type { PortRoute } from '../protocol/intercept.ts';
import { reset } from '../protocol/liveness.ts';
import { RequestRouter, type RouterOptions, type RouteTargets } from './request-router.ts';

/** A request as a test server received it. */
export interface Received {
  method: string;
  url: string;
  rawHeaders: string[];
  body: Buffer;
}

/** A test server standing for the app or a workstation. */
export class Backend {
  readonly received: Received[] = [];
  readonly events = new EventEmitter();
  port = 0;

  constructor(
    readonly name: string,
    readonly server: net.Server,
  ) {}

  record(request: Received): void {
    this.received.push(request);
    this.events.emit('request', request);
  }

  /** The first request, received or to come, with this URL. */
  async next(url: string): Promise<Received> {
    const seen = this.received.find((request) => request.url === url);
    if (seen) return seen;
    for (;;) {
      const [request] = (await once(this.events, 'request')) as [Received];
      if (request.url === url) return request;
    }
  }
}

/**
 * An HTTP/1 server that answers `<name> <method> <url> <body>` (never, for /hang; /trailers with
 * a trailer), and answers an upgrade with 101 and then echoes what it gets, prefixed with `<name>:`.
 */
export function h1Backend(name: string): Backend {
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    res.once('close', () => {
      if (!res.writableFinished) backend.events.emit('aborted', req.url);
    });
    req.once('end', () => {
      const body = Buffer.concat(chunks);
      backend.record({ method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, body });
      if (req.url === '/hang') return;
      res.setHeader('x-served-by', name);
      if (req.url === '/trailers') {
        res.writeHead(200, { Trailer: 'x-checksum' }).write('with ');
        res.addTrailers({ 'x-checksum': name });
        return void res.end('trailers');
      }
      res.end(
        `${name} ${req.method} ${req.url} ${body.length > 64 ? `${body.length} bytes` : body.toString()}`,
      );
    });
  });
  server.on('upgrade', (req: http.IncomingMessage, socket: Duplex) => {
    socket.on('error', () => undefined);
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    socket.on('data', (data: Buffer) => socket.write(`${name}:${data.toString()}`));
  });
  const backend = new Backend(name, server);
  return backend;
}

/** A gRPC message: compression flag, 4-byte length, payload. */
export function grpcFrame(message: string): Buffer {
  const payload = Buffer.from(message);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(payload.length, 1);
  return Buffer.concat([prefix, payload]);
}

/**
 * An h2c server: answers `<name> <method> <path> <body>` (never, for /hang), or for gRPC a
 * message `<name> got <message>` and trailers grpc-status 0 (/svc/Fail: a trailers-only answer,
 * grpc-status 5).
 */
export function h2Backend(name: string): Backend {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.once('close', () => {
      if (!stream.headersSent) backend.events.emit('aborted', headers[':path']);
    });
    stream.once('end', () => {
      const body = Buffer.concat(chunks);
      const [method, path] = [String(headers[':method']), String(headers[':path'])];
      backend.record({ method, url: path, rawHeaders: [], body });
      if (path === '/hang') return;
      // An answer the app cancels halfway.
      if (path === '/cut') {
        stream.respond({ ':status': 200 });
        return void stream.write('partial', () => reset(stream, 'cancel'));
      }
      if (headers['content-type'] !== 'application/grpc') {
        stream.respond({ ':status': 200, 'x-served-by': name });
        return void stream.end(`${name} ${method} ${path} ${body.toString()}`);
      }
      const grpc = { ':status': 200, 'content-type': 'application/grpc' };
      if (path === '/svc/Fail') {
        return stream.respond(
          { ...grpc, 'grpc-status': '5', 'grpc-message': `${name} found nothing` },
          { endStream: true },
        );
      }
      stream.respond(grpc, { waitForTrailers: true });
      stream.once('wantTrailers', () =>
        stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': `ok from ${name}` }),
      );
      stream.end(grpcFrame(`${name} got ${body.subarray(5).toString()}`));
    });
  });
  const backend = new Backend(name, server);
  return backend;
}

/** A raw TCP server standing for a non-HTTP app: greets on connect, echoes prefixed with `app:`. */
export function rawBackend(): Backend {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.write('220 ready\r\n');
    socket.on('data', (data: Buffer) => socket.write(`app:${data.toString('latin1')}`));
  });
  return new Backend('app', server);
}

/** A server that accepts connections and never answers. */
export function silentBackend(name: string): Backend {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.resume();
  });
  return new Backend(name, server);
}

/** Listens on a free loopback port; the returned function closes the server and its connections. */
export async function listen(server: net.Server): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket: net.Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const close = async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return { port: (server.address() as net.AddressInfo).port, close };
}

/** A loopback port nothing listens on: connections to it are refused. */
async function refusedPort(): Promise<number> {
  const { port, close } = await listen(net.createServer());
  await close();
  return port;
}

/** A client connection to loopback `port`, half-open allowed (as the router's sockets are). */
export function connectTo(port: number): net.Socket {
  return net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
}

/** Targets to backends by name: `app` is the app, any other name a workstation (unknown: refused). */
export async function targetsFor(backends: Backend[]): Promise<RouteTargets> {
  const refused = await refusedPort();
  const portOf = (name: string) => backends.find((backend) => backend.name === name)?.port ?? refused;
  return { app: () => connectTo(portOf('app')), workstation: (id) => connectTo(portOf(id)) };
}

/** A running harness: the front listener's port, its router, what the router logged, and its end. */
export interface Harness {
  port: number;
  router: RequestRouter;
  log: string[];
  close: () => Promise<void>;
}

/** Starts `backends` and a listener in front whose connections a router with `routes` handles. */
export async function harness(
  backends: Backend[],
  routes: PortRoute[],
  targets?: (backends: Backend[]) => Promise<RouteTargets>,
  options?: RouterOptions,
): Promise<Harness> {
  const closers: (() => Promise<void>)[] = [];
  for (const backend of backends) {
    const { port, close } = await listen(backend.server);
    backend.port = port;
    closers.push(close);
  }
  const log: string[] = [];
  const router = new RequestRouter(
    () => routes,
    await (targets ?? targetsFor)(backends),
    (m) => log.push(m),
    options,
  );
  const front = await listen(net.createServer({ allowHalfOpen: true }, (socket) => router.handle(socket)));
  const close = async () => {
    router.close();
    await front.close();
    await Promise.all(closers.map((closer) => closer()));
  };
  return { port: front.port, router, log, close };
}

/** A route of the whole port (or of what `filter` matches) to workstation `id`, mirrored or taken. */
export const intercept = (id: string, filter?: PortRoute['filter'], mirror = false): PortRoute => ({
  intercept: id,
  filter,
  mirror,
});
/** A route to workstation `id` of the requests whose `x-dev` header is `value`. */
export const byHeader = (id: string, value = id, mirror = false) =>
  intercept(id, { headers: [{ name: 'x-dev', value }] }, mirror);

/** What an HTTP/1 request got: status, headers, trailers, body, and the client's local port. */
export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  body: string;
  localPort: number | undefined;
}

/** One HTTP/1 request through the router. */
export async function request(
  port: number,
  options: http.RequestOptions & { body?: string | Buffer; continue?: boolean },
): Promise<Answer> {
  const req = http.request({ host: '127.0.0.1', port, ...options });
  if (options.continue) req.once('continue', () => req.end(options.body));
  else req.end(options.body);
  const [res] = (await once(req, 'response')) as [http.IncomingMessage];
  const localPort = res.socket.localPort;
  const chunks: Buffer[] = [];
  res.on('data', (chunk: Buffer) => chunks.push(chunk));
  await once(res, 'end');
  return {
    status: res.statusCode ?? 0,
    headers: res.headers,
    trailers: res.trailers,
    body: Buffer.concat(chunks).toString(),
    localPort,
  };
}

/** Everything a socket receives until it closes. */
export async function readAll(socket: net.Socket): Promise<string> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => undefined);
  socket.once('end', () => socket.end());
  await once(socket, 'close');
  return Buffer.concat(chunks).toString('latin1');
}

/** Reads from `socket` until what it received includes `text`. */
export async function readUntil(socket: net.Socket, text: string): Promise<string> {
  let received = '';
  while (!received.includes(text)) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    received += chunk.toString('latin1');
  }
  return received;
}

/** What an HTTP/2 stream got: headers, body and trailers. */
export interface H2Answer {
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders;
}

/** One HTTP/2 stream on `session`. */
export async function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: string | Buffer,
): Promise<H2Answer> {
  const stream = session.request(headers, { endStream: body === undefined });
  if (body !== undefined) stream.end(body);
  let trailers: http2.IncomingHttpHeaders = {};
  stream.on('trailers', (received: http2.IncomingHttpHeaders) => (trailers = received));
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  const [answer] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  await once(stream, 'end');
  return { headers: answer, body: Buffer.concat(chunks), trailers };
}

/** A hang fails its test rather than the run; no test needs more than a few seconds. */
export const LIMIT = { timeout: 20_000 };
