// Proves per-request routing over real sockets on 127.0.0.1: servers standing for the app and
// for workstations answer who they are, a listener in front hands each connection to the
// router, and clients check which server answered each HTTP/1 request, HTTP/2 stream, gRPC call
// and upgrade; mirrors get copies without the client ever waiting for them; anything not HTTP
// goes whole to the app.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { routeOrder, type PortRoute } from '../protocol/intercept.ts';
import { chooseRoutes, RequestRouter, type RouterOptions, type RouteTargets } from './request-router.ts';

/** A request as a test server received it. */
interface Received {
  method: string;
  url: string;
  rawHeaders: string[];
  body: Buffer;
}

/** A test server standing for the app or a workstation. */
class Backend {
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
function h1Backend(name: string): Backend {
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
function grpcFrame(message: string): Buffer {
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
function h2Backend(name: string): Backend {
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
function rawBackend(): Backend {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.write('220 ready\r\n');
    socket.on('data', (data: Buffer) => socket.write(`app:${data.toString('latin1')}`));
  });
  return new Backend('app', server);
}

/** A server that accepts connections and never answers. */
function silentBackend(name: string): Backend {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.resume();
  });
  return new Backend(name, server);
}

/** Listens on a free loopback port; the returned function closes the server and its connections. */
async function listen(server: net.Server): Promise<{ port: number; close: () => Promise<void> }> {
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

function connectTo(port: number): net.Socket {
  return net.connect({ host: '127.0.0.1', port, allowHalfOpen: true });
}

/** Targets to backends by name: `app` is the app, any other name a workstation (unknown: refused). */
async function targetsFor(backends: Backend[]): Promise<RouteTargets> {
  const refused = await refusedPort();
  const portOf = (name: string) => backends.find((backend) => backend.name === name)?.port ?? refused;
  return { app: () => connectTo(portOf('app')), workstation: (id) => connectTo(portOf(id)) };
}

interface Harness {
  port: number;
  router: RequestRouter;
  log: string[];
  close: () => Promise<void>;
}

/** Starts `backends` and a listener in front whose connections a router with `routes` handles. */
async function harness(
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

const intercept = (id: string, filter?: PortRoute['filter'], mirror = false): PortRoute => ({
  intercept: id,
  filter,
  mirror,
});
const byHeader = (id: string, value = id, mirror = false) =>
  intercept(id, { headers: [{ name: 'x-dev', value }] }, mirror);

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  trailers: NodeJS.Dict<string>;
  body: string;
  localPort: number | undefined;
}

/** One HTTP/1 request through the router. */
async function request(
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
async function readAll(socket: net.Socket): Promise<string> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => undefined);
  socket.once('end', () => socket.end());
  await once(socket, 'close');
  return Buffer.concat(chunks).toString('latin1');
}

/** Reads from `socket` until what it received includes `text`. */
async function readUntil(socket: net.Socket, text: string): Promise<string> {
  let received = '';
  while (!received.includes(text)) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    received += chunk.toString('latin1');
  }
  return received;
}

interface H2Answer {
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders;
}

/** One HTTP/2 stream on `session`. */
async function h2Request(
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
const LIMIT = { timeout: 20_000 };

test('chooseRoutes: filters by headers, path prefix and method; mirrors only for what the app answers', () => {
  const request = (method: string, path: string, headers: [string, string][] = []) => ({
    method,
    path,
    header: (name: string) => headers.filter(([field]) => field === name).map(([, value]) => value),
  });
  const alice = byHeader('alice');
  const aliceApi = intercept('alice-api', {
    headers: [{ name: 'X-Dev', value: 'alice' }],
    pathPrefix: '/api',
  });
  const posts = intercept('posts', { headers: [], method: 'POST' });
  const copy = intercept('copy', undefined, true);
  const copyApi = intercept('copy-api', { headers: [], pathPrefix: '/api' }, true);
  const routes = routeOrder([alice, aliceApi, posts, copy, copyApi]);

  assert.deepEqual(chooseRoutes([], request('GET', '/')), { take: undefined, mirrors: [] });
  assert.equal(chooseRoutes(routes, request('GET', '/api/x', [['x-dev', 'alice']])).take, aliceApi);
  assert.equal(chooseRoutes(routes, request('GET', '/web', [['x-dev', 'alice']])).take, alice);
  assert.equal(
    chooseRoutes(
      routes,
      request('GET', '/api?q', [
        ['x-dev', 'bob'],
        ['x-dev', 'alice'],
      ]),
    ).take,
    aliceApi,
  );
  assert.equal(
    chooseRoutes(routes, request('GET', 'http://web:8080/api/x', [['x-dev', 'alice']])).take,
    aliceApi,
  );
  assert.equal(chooseRoutes(routes, request('GET', '/web?p=/api', [['x-dev', 'alice']])).take, alice);
  assert.equal(chooseRoutes(routes, request('GET', '/', [['x-dev', 'Alice']])).take, undefined);
  assert.equal(chooseRoutes(routes, request('POST', '/web')).take, posts);
  assert.deepEqual(chooseRoutes(routes, request('POST', '/web', [['x-dev', 'alice']])), {
    take: alice,
    mirrors: [],
  });
  assert.deepEqual(chooseRoutes(routes, request('GET', '/api/v1')), {
    take: undefined,
    mirrors: [copyApi, copy],
  });
  assert.deepEqual(chooseRoutes(routes, request('GET', '/web')), { take: undefined, mirrors: [copy] });
  const everything = intercept('everything');
  assert.equal(chooseRoutes([everything], request('DELETE', '/any')).take, everything);
});

test(
  'HTTP/1: one keep-alive client connection, each request to the server its header names',
  LIMIT,
  async () => {
    const [app, a, b] = [h1Backend('app'), h1Backend('a'), h1Backend('b')];
    const h = await harness([app, a, b], [byHeader('a'), byHeader('b')]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const ports = new Set<number | undefined>();
      for (const dev of ['a', 'b', undefined, 'b', 'a', undefined, 'a']) {
        const headers = {
          'X-Mixed-Case': 'kept',
          Connection: 'keep-alive, X-Hop',
          'X-Hop': 'dropped',
          ...(dev && { 'x-dev': dev }),
        };
        const answer = await request(h.port, { agent, path: `/for-${dev ?? 'app'}`, headers });
        assert.equal(answer.status, 200);
        assert.equal(answer.body, `${dev ?? 'app'} GET /for-${dev ?? 'app'} `);
        assert.equal(answer.headers['x-served-by'], dev ?? 'app');
        ports.add(answer.localPort);
      }
      assert.equal(ports.size, 1, 'every request went over the same client connection');
      const received = await a.next('/for-a');
      assert.ok(received.rawHeaders.includes('X-Mixed-Case'), 'header names keep their case');
      assert.ok(
        !received.rawHeaders.some((name) => name.toLowerCase() === 'x-hop'),
        'hop-by-hop headers dropped',
      );
      assert.equal(app.received.length, 2);
      assert.equal(b.received.length, 2);
    } finally {
      agent.destroy();
      await h.close();
    }
  },
);

test('HTTP/1: pipelined requests are answered in order by the right servers', LIMIT, async () => {
  const [app, a, b] = [h1Backend('app'), h1Backend('a'), h1Backend('b')];
  const h = await harness([app, a, b], [byHeader('a'), byHeader('b')]);
  try {
    const socket = connectTo(h.port);
    socket.write(
      'GET /one HTTP/1.1\r\nHost: web\r\nx-dev: b\r\n\r\n' +
        'POST /two HTTP/1.1\r\nHost: web\r\nContent-Length: 5\r\n\r\nhello' +
        'GET /three HTTP/1.1\r\nHost: web\r\nx-dev: a\r\n\r\nGET /four HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n',
    );
    const text = await readAll(socket);
    const bodies = [...text.matchAll(/\r\n\r\n([^\r]*?)(?=HTTP\/1\.1|$)/g)].map((match) => match[1]);
    assert.deepEqual(bodies, ['b GET /one ', 'app POST /two hello', 'a GET /three ', 'app GET /four ']);
  } finally {
    await h.close();
  }
});

test(
  'HTTP/1: 500 pipelined requests are answered in order, one at a time over one app connection',
  LIMIT,
  async () => {
    const app = h1Backend('app');
    let open = 0;
    let most = 0;
    app.server.on('connection', (socket: net.Socket) => {
      most = Math.max(most, ++open);
      socket.once('close', () => open--);
    });
    const h = await harness([app], [byHeader('a')]);
    try {
      const socket = connectTo(h.port);
      const count = 500;
      let requests = '';
      for (let i = 0; i < count; i++) {
        requests += `GET /p${i} HTTP/1.1\r\nHost: web\r\n${i === count - 1 ? 'Connection: close\r\n' : ''}\r\n`;
      }
      socket.write(requests);
      const text = await readAll(socket);
      const bodies = [...text.matchAll(/\r\n\r\n(app GET \/p\d+ )/g)].map((match) => match[1]);
      assert.deepEqual(
        bodies,
        Array.from({ length: count }, (_, i) => `app GET /p${i} `),
      );
      assert.equal(most, 1, 'the app saw one connection from the agent at a time');
    } finally {
      await h.close();
    }
  },
);

test('HTTP/1: two client connections never share an upstream app connection', LIMIT, async () => {
  const app = new Backend(
    'app',
    http.createServer((req, res) => {
      req.resume();
      req.once('end', () => res.end(String(req.socket.remotePort)));
    }),
  );
  const h = await harness([app], []);
  const agents = [1, 2].map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }));
  try {
    const seen: string[][] = [[], []];
    for (const i of [0, 1, 0, 1, 0, 1]) {
      seen[i]?.push((await request(h.port, { agent: agents[i], path: `/c${i}` })).body);
    }
    const [first = [], second = []] = seen;
    assert.equal(new Set(first).size, 1, 'client 1 kept its upstream connection');
    assert.equal(new Set(second).size, 1, 'client 2 kept its upstream connection');
    assert.notEqual(first[0], second[0], 'the clients had different upstream connections');
  } finally {
    for (const agent of agents) agent.destroy();
    await h.close();
  }
});

test('HTTP/1: chunked bodies, Expect: 100-continue and trailers pass', LIMIT, async () => {
  const [app, a] = [h1Backend('app'), h1Backend('a')];
  const h = await harness([app, a], [byHeader('a')]);
  try {
    const req = http.request({
      host: '127.0.0.1',
      port: h.port,
      method: 'POST',
      path: '/chunked',
      headers: { 'x-dev': 'a' },
    });
    req.write('first,');
    setTimeout(() => req.end('second'), 20);
    const [res] = (await once(req, 'response')) as [http.IncomingMessage];
    res.setEncoding('utf8');
    let body = '';
    for await (const chunk of res) body += String(chunk);
    assert.equal(body, 'a POST /chunked first,second');
    assert.ok((await a.next('/chunked')).rawHeaders.some((value) => /^chunked$/i.test(value)));

    const answer = await request(h.port, {
      method: 'POST',
      path: '/upload',
      headers: { 'x-dev': 'a', expect: '100-continue', 'content-length': 4 },
      body: 'data',
      continue: true,
    });
    assert.equal(answer.body, 'a POST /upload data');

    const withTrailers = await request(h.port, { path: '/trailers', headers: { 'x-dev': 'a' } });
    assert.equal(withTrailers.body, 'with trailers');
    assert.equal(withTrailers.trailers['x-checksum'], 'a');
  } finally {
    await h.close();
  }
});

test('HTTP/1: path-prefix and method filters, the most specific route first', LIMIT, async () => {
  const [app, api, posts, joined] = [
    h1Backend('app'),
    h1Backend('api'),
    h1Backend('posts'),
    h1Backend('joined'),
  ];
  const routes = routeOrder([
    intercept('api', { headers: [], pathPrefix: '/api' }),
    intercept('posts', { headers: [], pathPrefix: '/api/v2', method: 'POST' }),
    intercept('joined', { headers: [{ name: 'x-dev', value: 'c, d' }] }),
  ]);
  const h = await harness([app, api, posts, joined], routes);
  try {
    const cases: [string, string, string][] = [
      ['GET', '/api/x?q=1', 'api'],
      ['POST', '/api/v2/items', 'posts'],
      ['GET', '/api/v2/items', 'api'],
      ['POST', '/apis', 'api'],
      ['POST', '/web/api', 'app'],
    ];
    for (const [method, path, who] of cases) {
      assert.equal((await request(h.port, { method, path })).body, `${who} ${method} ${path} `);
    }
    // A repeated header also matches by its joined value.
    const answer = await request(h.port, {
      path: '/both',
      headers: ['Host', 'web', 'x-dev', 'c', 'x-dev', 'd'],
    });
    assert.equal(answer.body, 'joined GET /both ');
  } finally {
    await h.close();
  }
});

test('HTTP/1: an upgrade takes its connection to the server its header names', LIMIT, async () => {
  const [app, a, b] = [h1Backend('app'), h1Backend('a'), h1Backend('b')];
  const h = await harness([app, a, b], [byHeader('a'), byHeader('b')]);
  try {
    for (const [dev, who] of [
      ['x-dev: b\r\n', 'b'],
      ['', 'app'],
    ] as const) {
      const socket = connectTo(h.port);
      socket.write(
        `GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${dev}Sec-WebSocket-Version: 13\r\n\r\n`,
      );
      assert.match(await readUntil(socket, '\r\n\r\n'), /^HTTP\/1\.1 101 /);
      socket.write('ping');
      assert.equal(await readUntil(socket, 'ping'), `${who}:ping`);
      socket.write('again');
      assert.equal(await readUntil(socket, 'again'), `${who}:again`);
      socket.destroy();
    }
  } finally {
    await h.close();
  }
});

test(
  'HTTP/1: an upgrade its server refuses (200, not 101) closes the connection: later requests never follow it',
  LIMIT,
  async () => {
    const app = h1Backend('app');
    // Answers every request, upgrades included, with a plain 200, keeping the connection.
    const a = new Backend(
      'a',
      net.createServer((socket) => {
        socket.on('error', () => undefined);
        let buffered = '';
        socket.on('data', (data: Buffer) => {
          buffered += data.toString('latin1');
          for (let end = buffered.indexOf('\r\n\r\n'); end >= 0; end = buffered.indexOf('\r\n\r\n')) {
            const [method = '', url = ''] = buffered.slice(0, end).split(' ');
            buffered = buffered.slice(end + 4);
            a.record({ method, url, rawHeaders: [], body: Buffer.alloc(0) });
            const body = url === '/ws' ? 'no thanks' : `a ${method} ${url}`;
            socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
          }
        });
      }),
    );
    const h = await harness([app, a], [byHeader('a')]);
    try {
      const socket = connectTo(h.port);
      socket.write(
        'GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nx-dev: a\r\n\r\n',
      );
      assert.match(await readUntil(socket, 'no thanks'), /^HTTP\/1\.1 200 .*\r\n\r\nno thanks$/s);
      socket.write('GET /next HTTP/1.1\r\nHost: web\r\n\r\n');
      const rest = await readAll(socket);
      assert.ok(!rest.includes('a GET /next'), rest);
      assert.ok(!a.received.some((received) => received.url === '/next'), 'the next request did not reach a');
    } finally {
      await h.close();
    }
  },
);

test(
  'HTTP/1: a client silent for a while before its first request is still routed per request',
  LIMIT,
  async () => {
    const [app, a] = [h1Backend('app'), h1Backend('a')];
    const h = await harness([app, a], [byHeader('a')]);
    try {
      const socket = connectTo(h.port);
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      socket.write('GET /late HTTP/1.1\r\nHost: web\r\nx-dev: a\r\nConnection: close\r\n\r\n');
      assert.match(await readAll(socket), /\r\n\r\na GET \/late $/);
    } finally {
      await h.close();
    }
  },
);

test(
  'HTTP/1: a workstation that does not answer gets the client a 502, and the connection goes on',
  LIMIT,
  async () => {
    const app = h1Backend('app');
    const h = await harness([app], [byHeader('gone')]);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const failed = await request(h.port, { agent, path: '/x', headers: { 'x-dev': 'gone' } });
      assert.equal(failed.status, 502);
      assert.match(failed.body, /^telepod: the workstation of this intercept did not answer: .*ECONNREFUSED/);
      const body = Buffer.alloc(1024 * 1024, 'x');
      const put = await request(h.port, {
        agent,
        method: 'PUT',
        path: '/x',
        headers: { 'x-dev': 'gone' },
        body,
      });
      assert.equal(put.status, 502);
      const served = await request(h.port, { agent, path: '/y' });
      assert.equal(served.body, 'app GET /y ');
      assert.equal(served.localPort, failed.localPort);
      const upgrade = connectTo(h.port);
      upgrade.write(
        'GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nx-dev: gone\r\n\r\n',
      );
      assert.match(
        await readAll(upgrade),
        /^HTTP\/1\.1 502 .*\r\n\r\ntelepod: the workstation of this intercept did not answer/s,
      );
    } finally {
      agent.destroy();
      await h.close();
    }
  },
);

test(
  'HTTP/1: an upstream connection found closed on reuse: sent again without a body, 502 with one',
  LIMIT,
  async () => {
    const used = new WeakSet<net.Socket>();
    // Closes each connection when its second request arrives, as an idle timeout racing it would.
    const flaky = new Backend(
      'a',
      http.createServer((req, res) => {
        if (used.has(req.socket)) return void req.socket.destroy();
        used.add(req.socket);
        req.resume();
        req.once('end', () => res.end(`a ${req.method} ${req.url}`));
      }),
    );
    const h = await harness([h1Backend('app'), flaky], [byHeader('a')]);
    try {
      for (let i = 0; i < 3; i++) {
        const answer = await request(h.port, { path: `/get${i}`, headers: { 'x-dev': 'a' } });
        assert.equal(answer.body, `a GET /get${i}`);
      }
      const posted = await request(h.port, {
        method: 'POST',
        path: '/post',
        headers: { 'x-dev': 'a' },
        body: 'x',
      });
      assert.equal(posted.status, 502);
      assert.match(posted.body, /^telepod: the workstation of this intercept did not answer: socket hang up/);
    } finally {
      await h.close();
    }
  },
);

test(
  'targets that fail at once (no manager) or throw: HTTP/1 requests, upgrades and HTTP/2 streams get a 502',
  LIMIT,
  async () => {
    const failing = (id: string) => {
      if (id === 'throws') throw new Error('no such intercept');
      const stream = new Duplex({ read: () => undefined, write: (_chunk, _encoding, done) => done() });
      process.nextTick(() => stream.destroy(new Error('the traffic manager is not connected')));
      return stream;
    };
    const expected =
      /^telepod: the workstation of this intercept did not answer: (.*not connected|no such intercept)/;
    for (const backend of [h1Backend('app'), h2Backend('app')]) {
      const h = await harness([backend], [byHeader('a'), byHeader('throws')], async (backends) => ({
        ...(await targetsFor(backends)),
        workstation: failing,
      }));
      const session =
        backend.server instanceof http.Server ? undefined : http2.connect(`http://127.0.0.1:${h.port}`);
      try {
        for (const dev of ['a', 'throws', 'a']) {
          const answer = session
            ? await h2Request(session, { ':path': '/x', 'x-dev': dev })
            : await request(h.port, { path: '/x', headers: { 'x-dev': dev } });
          const status = session ? (answer as H2Answer).headers[':status'] : (answer as Answer).status;
          assert.equal(status, 502);
          assert.match(answer.body.toString(), expected);
          if (session) continue;
          const upgrade = connectTo(h.port);
          upgrade.write(
            `GET /ws HTTP/1.1\r\nHost: web\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nx-dev: ${dev}\r\n\r\n`,
          );
          assert.match((await readAll(upgrade)).split('\r\n\r\n')[1] ?? '', expected);
        }
      } finally {
        session?.destroy();
        await h.close();
      }
    }
  },
);

test(
  'HTTP/1: a client slow to send a complete request head is cut off, also between requests',
  LIMIT,
  async () => {
    const app = h1Backend('app');
    const h = await harness([app], [byHeader('a')], undefined, { headTimeoutMs: 300 });
    const partial = connectTo(h.port);
    partial.write('GET /slow HTTP/1.1\r\nHost: web\r\n');
    const trickle = setInterval(() => partial.write('x-a: b\r\n'), 50);
    /** Resolves when `socket` closes, reset (its unread bytes cut off) or not. */
    const closed = (socket: net.Socket) => {
      socket.on('error', () => undefined);
      socket.once('end', () => socket.destroy());
      return new Promise((resolve) => socket.once('close', resolve));
    };
    try {
      const started = Date.now();
      await closed(partial);
      await closed(connectTo(h.port)); // silent
      const idle = connectTo(h.port);
      idle.write('GET /once HTTP/1.1\r\nHost: web\r\n\r\n');
      assert.match(await readAll(idle), /\r\n\r\napp GET \/once $/);
      assert.ok(Date.now() - started < 5_000);
      assert.ok(!app.received.some((received) => received.url === '/slow'));
    } finally {
      clearInterval(trickle);
      partial.destroy();
      await h.close();
    }
  },
);

test('HTTP/1: a client that goes away aborts its request upstream', LIMIT, async () => {
  const [app, a] = [h1Backend('app'), h1Backend('a')];
  const h = await harness([app, a], [byHeader('a')]);
  try {
    const socket = connectTo(h.port);
    socket.on('error', () => undefined);
    socket.write('GET /hang HTTP/1.1\r\nHost: web\r\nx-dev: a\r\n\r\n');
    await a.next('/hang');
    const aborted = once(a.events, 'aborted');
    socket.destroy();
    assert.deepEqual(await aborted, ['/hang']);
  } finally {
    await h.close();
  }
});

test('HTTP/1 mirror: the app answers, the mirror gets a copy with the body', LIMIT, async () => {
  const [app, a, b] = [h1Backend('app'), h1Backend('a'), h1Backend('b')];
  const h = await harness([app, a, b], [byHeader('b'), intercept('a', undefined, true)]);
  try {
    const answer = await request(h.port, {
      method: 'POST',
      path: '/m',
      body: 'copy me',
      headers: { 'x-trace': '1' },
    });
    assert.equal(answer.body, 'app POST /m copy me');
    const copy = await a.next('/m');
    assert.equal(copy.method, 'POST');
    assert.equal(copy.body.toString(), 'copy me');
    assert.ok(copy.rawHeaders.includes('x-trace'));
    assert.equal((await request(h.port, { path: '/to-b', headers: { 'x-dev': 'b' } })).body, 'b GET /to-b ');
    assert.equal((await request(h.port, { path: '/after' })).body, 'app GET /after ');
    await a.next('/after');
    assert.ok(
      !a.received.some((request) => request.url === '/to-b'),
      'what a workstation answers is not mirrored',
    );
  } finally {
    await h.close();
  }
});

test(
  'HTTP/1 mirror: a refused or hanging mirror never holds the client up; big bodies are not copied',
  LIMIT,
  async () => {
    const [app, hang] = [h1Backend('app'), silentBackend('hang')];
    const routes = [intercept('dead', undefined, true), intercept('hang', undefined, true)];
    const h = await harness([app, hang], routes);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 40; i++) {
        assert.equal((await request(h.port, { agent, path: `/r${i}` })).body, `app GET /r${i} `);
      }
      const big = Buffer.alloc(2 * 1024 * 1024, 'x');
      const answer = await request(h.port, { agent, method: 'PUT', path: '/big', body: big });
      assert.equal(answer.body, `app PUT /big ${big.length} bytes`);
      assert.ok(h.log.some((line) => line.includes('mirror of intercept hang: 32 copies await an answer')));
      assert.ok(h.log.some((line) => /mirror of intercept dead: a copy failed: .*ECONNREFUSED/.test(line)));
      assert.ok(h.log.some((line) => line.includes('over 1 MiB is not mirrored')));
    } finally {
      agent.destroy();
      await h.close();
    }
  },
);

test(
  'HTTP/1 mirror: stalled uploads holding every mirror slot keep others from being held for copies',
  LIMIT,
  async () => {
    const [app, m] = [h1Backend('app'), h1Backend('m')];
    const h = await harness([app, m], [intercept('m', undefined, true)]);
    const stalled: net.Socket[] = [];
    try {
      const part = 10_000;
      for (let i = 0; i < 32; i++) {
        const socket = connectTo(h.port);
        socket.on('error', () => undefined);
        socket.write(`POST /stalled${i} HTTP/1.1\r\nHost: web\r\nContent-Length: 100000\r\n\r\n`);
        socket.write(Buffer.alloc(part, 'x'));
        stalled.push(socket);
      }
      while (h.router.mirrorBytesHeld < 32 * part) await new Promise((resolve) => setTimeout(resolve, 10));
      const body = Buffer.alloc(200_000, 'y');
      for (let i = 0; i < 5; i++) {
        const answer = await request(h.port, { method: 'POST', path: `/more${i}`, body });
        assert.equal(answer.body, `app POST /more${i} ${body.length} bytes`);
        assert.ok(h.router.mirrorBytesHeld <= 32 * part, `${h.router.mirrorBytesHeld} bytes held`);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.ok(!m.received.some((received) => received.url.startsWith('/more')), 'no slot, no copy');
      for (const socket of stalled) socket.destroy();
      while (h.router.mirrorBytesHeld > 0) await new Promise((resolve) => setTimeout(resolve, 10));
      await request(h.port, { method: 'POST', path: '/later', body: 'x' });
      assert.equal((await m.next('/later')).body.toString(), 'x', 'slots freed by aborted uploads');
    } finally {
      for (const socket of stalled) socket.destroy();
      await h.close();
    }
  },
);

test(
  'HTTP/2: streams of one session go to the servers their headers name; cancels pass on',
  LIMIT,
  async () => {
    const [app, a, b] = [h2Backend('app'), h2Backend('a'), h2Backend('b')];
    const h = await harness([app, a, b], [byHeader('a'), byHeader('b'), byHeader('gone')]);
    const session = http2.connect(`http://127.0.0.1:${h.port}`);
    try {
      const devs = ['a', 'b', undefined, 'b', 'a', undefined];
      const answers = await Promise.all(
        devs.map((dev, i) =>
          h2Request(
            session,
            { ':method': 'POST', ':path': `/s${i}`, ...(dev && { 'x-dev': dev }) },
            `body${i}`,
          ),
        ),
      );
      answers.forEach((answer, i) => {
        assert.equal(answer.headers[':status'], 200);
        assert.equal(answer.body.toString(), `${devs[i] ?? 'app'} POST /s${i} body${i}`);
      });
      const failed = await h2Request(session, { ':path': '/gone', 'x-dev': 'gone' });
      assert.equal(failed.headers[':status'], 502);
      assert.match(failed.body.toString(), /^telepod: the workstation of this intercept did not answer/);

      // A stream the client cancels is cancelled upstream.
      const hanging = session.request({ ':path': '/hang', 'x-dev': 'b' });
      hanging.on('error', () => undefined);
      await b.next('/hang');
      const aborted = once(b.events, 'aborted');
      hanging.close(http2.constants.NGHTTP2_CANCEL);
      assert.deepEqual(await aborted, ['/hang']);
    } finally {
      session.destroy();
      await h.close();
    }
  },
);

test("HTTP/2: a client holding all the app's streams does not hold up another client", LIMIT, async () => {
  const app = h2Backend('app');
  app.server.on('listening', () =>
    (app.server as http2.Http2Server).updateSettings({ maxConcurrentStreams: 10 }),
  );
  const h = await harness([app], [byHeader('a')]);
  const [first, second] = [1, 2].map(() => http2.connect(`http://127.0.0.1:${h.port}`));
  try {
    for (let i = 0; i < 10; i++) first?.request({ ':path': '/hang' }).on('error', () => undefined);
    while (app.received.filter((received) => received.url === '/hang').length < 10)
      await once(app.events, 'request');
    const answer = h2Request(second as http2.ClientHttp2Session, { ':path': '/other' });
    const late = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('no answer in 3 s')), 3_000).unref(),
    );
    assert.equal((await Promise.race([answer, late])).body.toString(), 'app GET /other ');
  } finally {
    first?.destroy();
    second?.destroy();
    await h.close();
  }
});

test('HTTP/2: a gRPC call is routed by its metadata, with its trailers', LIMIT, async () => {
  const [app, a, b] = [h2Backend('app'), h2Backend('a'), h2Backend('b')];
  const h = await harness([app, a, b], [byHeader('a'), byHeader('b')]);
  const session = http2.connect(`http://127.0.0.1:${h.port}`);
  try {
    const call = (path: string, dev?: string) =>
      h2Request(
        session,
        {
          ':method': 'POST',
          ':path': path,
          'content-type': 'application/grpc',
          te: 'trailers',
          ...(dev && { 'x-dev': dev }),
        },
        grpcFrame('hi'),
      );
    for (const dev of ['a', undefined]) {
      const answer = await call('/svc/Echo', dev);
      assert.equal(answer.headers['content-type'], 'application/grpc');
      assert.equal(answer.body.subarray(5).toString(), `${dev ?? 'app'} got hi`);
      assert.equal(answer.body.readUInt32BE(1), answer.body.length - 5);
      assert.equal(answer.trailers['grpc-status'], '0');
      assert.equal(answer.trailers['grpc-message'], `ok from ${dev ?? 'app'}`);
    }
    const failed = await call('/svc/Fail', 'b');
    assert.equal(failed.headers['grpc-status'], '5');
    assert.equal(failed.headers['grpc-message'], 'b found nothing');
    assert.equal(failed.body.length, 0);
  } finally {
    session.destroy();
    await h.close();
  }
});

test(
  'HTTP/2 mirror: the app answers, mirrors get copies; refused or hanging ones never hold it up',
  LIMIT,
  async () => {
    const [app, a, hang] = [h2Backend('app'), h2Backend('a'), silentBackend('hang')];
    const mirrors = ['a', 'dead', 'hang'].map((id) => intercept(id, undefined, true));
    const h = await harness([app, a, hang], mirrors);
    const session = http2.connect(`http://127.0.0.1:${h.port}`);
    try {
      const answer = await h2Request(session, { ':method': 'POST', ':path': '/m' }, 'copy me');
      assert.equal(answer.body.toString(), 'app POST /m copy me');
      assert.equal((await a.next('/m')).body.toString(), 'copy me');
      for (let i = 0; i < 40; i++) {
        assert.equal((await h2Request(session, { ':path': `/g${i}` })).body.toString(), `app GET /g${i} `);
      }
      await a.next('/g39');
      assert.ok(h.log.some((line) => line.includes('mirror of intercept hang: 32 copies await an answer')));
    } finally {
      session.destroy();
      await h.close();
    }
  },
);

test(
  'routes through HTTP/2 CONNECT streams, as through the manager: keep-alive HTTP/1 and h2c',
  LIMIT,
  async () => {
    const backends = [h1Backend('app'), h1Backend('a'), h1Backend('b'), h2Backend('h2app'), h2Backend('h2a')];
    const manager = http2.createServer();
    let connects = 0;
    manager.on('stream', (stream, headers) => {
      connects++;
      stream.on('error', () => undefined);
      const name = String(headers[':authority']).split(':')[0] ?? '';
      const socket = connectTo(backends.find((backend) => backend.name === name)?.port ?? 0);
      socket.on('error', () => stream.destroy());
      stream.respond({ ':status': 200 });
      socket.pipe(stream).pipe(socket);
    });
    const managerServer = await listen(manager);
    const toManager = http2.connect(`http://127.0.0.1:${managerServer.port}`);
    const viaManager = (name: string) =>
      toManager.request({ ':method': 'CONNECT', ':authority': `${name}:1` });
    const throughManager = (app: Backend | undefined) => () =>
      Promise.resolve({ app: () => connectTo(app?.port ?? 0), workstation: viaManager });
    const h1Routes = [byHeader('a'), byHeader('b')];
    const h1 = await harness(backends.slice(0, 3), h1Routes, throughManager(backends[0]));
    const h2 = await harness(backends.slice(3), [byHeader('h2a')], throughManager(backends[3]));

    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const session = http2.connect(`http://127.0.0.1:${h2.port}`);
    try {
      for (const dev of ['a', 'b', 'a', undefined, 'b']) {
        const headers = dev ? { 'x-dev': dev } : {};
        assert.equal(
          (await request(h1.port, { agent, path: '/k', headers })).body,
          `${dev ?? 'app'} GET /k `,
        );
      }
      assert.equal(backends[1]?.received.length, 2);
      assert.equal(connects, 2, 'one kept-alive connection per workstation');
      for (const dev of ['h2a', undefined, 'h2a']) {
        const answer = await h2Request(session, { ':path': '/s', ...(dev && { 'x-dev': dev }) });
        assert.equal(answer.body.toString(), `${dev ?? 'h2app'} GET /s `);
      }
      assert.equal(connects, 3, 'one HTTP/2 session per workstation');
      // A request's head and body, or a mirror's copy, written at once: the head arrives whole.
      const posted = await request(h1.port, {
        method: 'POST',
        path: '/p',
        body: 'to a',
        headers: { 'x-dev': 'a' },
      });
      assert.equal(posted.body, 'a POST /p to a');
      h1Routes.splice(0, h1Routes.length, intercept('a', undefined, true));
      const copy = await request(h1.port, { method: 'POST', path: '/c', body: 'copied' });
      assert.equal(copy.body, 'app POST /c copied');
      assert.equal((await request(h1.port, { path: '/g' })).body, 'app GET /g ');
      const copies = [await backends[1].next('/c'), await backends[1].next('/g')];
      assert.deepEqual(
        copies.map((c) => `${c.method} ${c.body.toString()}`),
        ['POST copied', 'GET '],
      );
    } finally {
      agent.destroy();
      session.destroy();
      toManager.destroy();
      await h1.close();
      await h2.close();
      await managerServer.close();
    }
  },
);

test('non-HTTP connections go whole to the app, also when the server speaks first', LIMIT, async () => {
  const h = await harness([rawBackend()], [byHeader('a')]);
  try {
    for (const bytes of [
      '\x16\x03\x01\x00\x05hello',
      'hello\n',
      'GET / HTTP/2.5\r\n',
      'FOO / HTTP/1.1\r\n',
    ]) {
      const socket = connectTo(h.port);
      socket.write(Buffer.from(bytes, 'latin1'));
      assert.equal(await readUntil(socket, `app:${bytes}`), `220 ready\r\napp:${bytes}`);
      socket.destroy();
    }
    assert.equal(h.log.filter((line) => line.includes('goes to the app whole')).length, 1, 'logged once');
    assert.match(h.log[0] ?? '', /^TLS goes to the app whole/);

    const silent = connectTo(h.port);
    assert.equal(await readUntil(silent, '\r\n'), '220 ready\r\n');
    silent.write('QUIT\r\n');
    assert.equal(await readUntil(silent, 'QUIT\r\n'), 'app:QUIT\r\n');
    silent.destroy();
  } finally {
    await h.close();
  }
});

/** 64 bytes that look random, the same each run. */
const noise = (seed: string) => createHash('sha512').update(seed).digest();

test('garbage never breaks the router', LIMIT, async () => {
  const [app, a] = [h1Backend('app'), h1Backend('a')];
  const h = await harness([app, a], [byHeader('a')]);
  try {
    const inputs = [
      Buffer.from('GET / HTTP/1.1\r\nbad header line\r\n\r\n'),
      Buffer.from('POST / HTTP/1.1\r\nx-dev: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'),
      Buffer.from('GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n'),
      Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), noise('preface')]),
      ...['a', 'b', 'c', 'd', 'e'].map(noise),
    ];
    await Promise.all(
      inputs.map(async (input) => {
        const socket = connectTo(h.port);
        socket.end(input);
        await readAll(socket);
      }),
    );
    assert.equal((await request(h.port, { path: '/fine', headers: { 'x-dev': 'a' } })).body, 'a GET /fine ');
  } finally {
    await h.close();
  }
});
