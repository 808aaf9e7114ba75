// Proves mirroring over real sockets on 127.0.0.1: the app answers, mirrors get copies of
// HTTP/1 requests and HTTP/2 streams, a refused or hanging mirror never holds the client up, and
// stalled uploads holding every mirror slot do not hold up others' requests.
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { test } from 'node:test';
import {
  h1Backend,
  h2Backend,
  silentBackend,
  connectTo,
  harness,
  intercept,
  byHeader,
  request,
  h2Request,
  LIMIT,
} from './request-router.fixture.ts';

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
