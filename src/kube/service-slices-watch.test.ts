// The watch of a Service's EndpointSlices against a fake API server: the request it makes, which
// events count as changes, how it ends (an ERROR event, a refusal) and that stopping it early
// ends the request without a callback.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';
import { watchServiceSlices, type WatchEnd } from './service-endpoints.ts';
import { localKubeConfig } from './local-kubeconfig.fixture.ts';

/** What the fake API server does with the next watch request. */
let answer: (req: http.IncomingMessage, res: http.ServerResponse) => void = () => undefined;
const server = http.createServer((req, res) => answer(req, res));
before(() => new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve)));
after(() => {
  server.closeAllConnections();
  server.close();
});

const kubeConfig = () => localKubeConfig(server);

const line = (type: string, object: unknown) => `${JSON.stringify({ type, object })}\n`;

test('changes are slice events, bookmarks are not; an ERROR event ends the watch with its code', async () => {
  let url: URL | undefined;
  answer = (req, res) => {
    url = new URL(req.url!, 'http://x');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write(line('ADDED', { kind: 'EndpointSlice' }));
    res.write(line('BOOKMARK', { kind: 'EndpointSlice' }));
    res.write(line('MODIFIED', { kind: 'EndpointSlice' }));
    res.write(line('ERROR', { kind: 'Status', code: 410, message: 'too old resource version' }));
  };
  let changes = 0;
  const ends: WatchEnd[] = [];
  await new Promise<void>((resolve) => {
    watchServiceSlices(
      kubeConfig(),
      'shop',
      'web',
      '42',
      () => changes++,
      (why) => {
        ends.push(why);
        resolve();
      },
    );
  });
  assert.equal(url?.pathname, '/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices');
  assert.equal(url?.searchParams.get('watch'), 'true');
  assert.equal(url?.searchParams.get('labelSelector'), 'kubernetes.io/service-name=web');
  assert.equal(url?.searchParams.get('resourceVersion'), '42');
  const timeout = Number(url?.searchParams.get('timeoutSeconds'));
  assert.ok(timeout >= 300 && timeout < 360, `the API server ends it after ${timeout} s`);
  assert.equal(changes, 2);
  assert.equal(ends.length, 1);
  assert.equal(ends[0]?.statusCode, 410);
});

test('a refused watch ends with the HTTP status (403: no watch right)', async () => {
  answer = (_req, res) => res.writeHead(403).end();
  const why = await new Promise<WatchEnd>((resolve) =>
    watchServiceSlices(kubeConfig(), 'shop', 'web', '1', () => undefined, resolve),
  );
  assert.equal(why?.statusCode, 403);
});

test('stopped before the API server answers: the request is ended once it does, and nothing is called', async () => {
  let closed!: Promise<void>;
  const requested = new Promise<http.ServerResponse>((resolve) => {
    answer = (req, res) => {
      closed = new Promise((done) => req.socket.once('close', done));
      resolve(res);
    };
  });
  let called = 0;
  const stop = watchServiceSlices(
    kubeConfig(),
    'shop',
    'web',
    '1',
    () => called++,
    () => called++,
  );
  const response = await requested;
  stop();
  response.writeHead(200, { 'content-type': 'application/json' });
  response.write(line('ADDED', { kind: 'EndpointSlice' }));
  await closed;
  assert.equal(called, 0);
});
