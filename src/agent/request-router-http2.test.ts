// Proves per-request routing of HTTP/2 over real sockets on 127.0.0.1: streams and gRPC calls
// reach the server their headers name, one client cannot starve another, and routing works
// through HTTP/2 CONNECT streams as it does through the manager.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import { test } from 'node:test';
import { endedCleanly } from '../protocol/liveness.ts';
import {
  Backend,
  h1Backend,
  grpcFrame,
  h2Backend,
  listen,
  connectTo,
  harness,
  intercept,
  byHeader,
  request,
  h2Request,
  LIMIT,
} from './request-router.fixture.ts';

test(
  'HTTP/2: streams of one session go to the servers their headers name; cancels pass on, both ways',
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

      // An answer the app cancels halfway reaches the client cancelled, never complete.
      const cut = session.request({ ':path': '/cut', 'x-dev': 'a' }, { endStream: true });
      cut.on('error', () => undefined);
      let partial = '';
      cut.on('data', (chunk: Buffer) => (partial += chunk.toString()));
      await once(cut, 'close');
      assert.equal(partial, 'partial');
      assert.equal(cut.rstCode, http2.constants.NGHTTP2_CANCEL);
      assert.equal(endedCleanly(cut), false);

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
