// Proves per-request routing's choices and its edges over real sockets on 127.0.0.1: which
// route a request takes (chooseRoutes), targets that fail at once, anything not HTTP going whole
// to the app, and garbage never breaking the router. The HTTP/1, HTTP/2 and mirror cases are in
// request-router-*.test.ts, the servers and harness they share in request-router.fixture.ts.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http from 'node:http';
import http2 from 'node:http2';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { routeOrder } from '../protocol/intercept.ts';
import { chooseRoutes } from './request-router.ts';
import {
  h1Backend,
  h2Backend,
  rawBackend,
  connectTo,
  targetsFor,
  harness,
  intercept,
  byHeader,
  type Answer,
  request,
  readAll,
  readUntil,
  type H2Answer,
  h2Request,
  LIMIT,
} from './request-router.fixture.ts';

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
