// Proves per-request routing of HTTP/1 over real sockets on 127.0.0.1: keep-alive and pipelined
// requests each reach the server their headers name, bodies, trailers and upgrades pass, and a
// slow, silent or vanished client or server never holds up the rest.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import { routeOrder } from '../protocol/intercept.ts';
import {
  Backend,
  h1Backend,
  connectTo,
  harness,
  intercept,
  byHeader,
  request,
  readAll,
  readUntil,
  LIMIT,
} from './request-router.fixture.ts';

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
