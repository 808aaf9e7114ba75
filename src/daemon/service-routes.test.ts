// Which connections go straight to a pod: a Service address learned from a cluster DNS answer,
// once its endpoints are read and the Service's own spec names that address; nothing else.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import type { Packet } from 'dns-packet';
import { pino } from 'pino';
import type { ServiceEndpoints, WatchEnd } from '../kube/service-endpoints.ts';
import { ServiceRoutes, type WatchSlices } from './service-routes.ts';

const log = pino({ level: 'silent' });
const answer = (name: string, address: string): Packet => ({
  type: 'response',
  answers: [{ type: 'A', name, ttl: 5, data: address }],
});
const endpoints = (clusterIP: string): ServiceEndpoints => ({
  clusterIPs: [clusterIP],
  ports: new Map([[8000, [{ pod: 'web-1', port: 8080 }]]]),
});
const settled = () => new Promise((resolve) => setImmediate(resolve));

test('a Service address from a DNS answer goes to one of its pods once the endpoints are read', async () => {
  const reads: string[] = [];
  const routes = new ServiceRoutes({
    domain: 'cluster.local',
    read: (ns, service) => (reads.push(`${ns}/${service}`), Promise.resolve(endpoints('10.96.0.7'))),
    log,
  });
  assert.equal(routes.route('10.96.0.7', 8000), undefined, 'nothing is known before DNS');
  routes.learn(answer('web.shop.svc.cluster.local', '10.96.0.7'));
  assert.equal(routes.route('10.96.0.7', 8000), undefined, 'the first connection takes the manager');
  await settled();
  assert.deepEqual(routes.route('10.96.0.7', 8000), { namespace: 'shop', pod: 'web-1', port: 8080 });
  assert.equal(routes.route('10.96.0.7', 9999), undefined, 'a port the Service does not have');
  assert.deepEqual(reads, ['shop/web']);
  // The kubelet could not connect to that pod's port: the manager carries it, without a try each time.
  routes.failed({ namespace: 'shop', pod: 'web-1', port: 8080 });
  assert.equal(routes.route('10.96.0.7', 8000), undefined);
});

test("an address the Service's spec does not give is never routed (a DNS answer is not trusted)", async () => {
  const routes = new ServiceRoutes({
    domain: 'cluster.local',
    read: () => Promise.resolve(endpoints('10.96.0.8')),
    log,
  });
  routes.learn(answer('web.shop.svc.cluster.local', '10.96.0.99'));
  routes.route('10.96.0.99', 8000);
  await settled();
  assert.equal(routes.route('10.96.0.99', 8000), undefined);
});

test('names that are not a Service of the cluster domain are not learned', async () => {
  let reads = 0;
  const routes = new ServiceRoutes({
    domain: 'cluster.local',
    read: () => (reads++, Promise.resolve(endpoints('10.96.0.7'))),
    log,
  });
  for (const name of ['web.shop.svc.example.com', 'web.shop.cluster.local', 'a.web.shop.svc.cluster.local']) {
    routes.learn(answer(name, '10.96.0.7'));
  }
  routes.route('10.96.0.7', 8000);
  await settled();
  assert.equal(reads, 0);
});

test('a namespace where the developer may not read or port-forward takes the manager', async () => {
  const routes = new ServiceRoutes({
    domain: 'cluster.local',
    read: () => Promise.reject(Object.assign(new Error('forbidden'), { code: 403 })),
    log,
  });
  routes.learn(answer('web.shop.svc.cluster.local', '10.96.0.7'));
  routes.route('10.96.0.7', 8000);
  await settled();
  assert.equal(routes.route('10.96.0.7', 8000), undefined);

  const allowed = new ServiceRoutes({
    domain: 'cluster.local',
    read: () => Promise.resolve(endpoints('10.96.0.7')),
    log,
  });
  allowed.learn(answer('web.shop.svc.cluster.local', '10.96.0.7'));
  allowed.route('10.96.0.7', 8000);
  await settled();
  allowed.refuse('shop');
  assert.equal(allowed.route('10.96.0.7', 8000), undefined);
});

/** A fake watch: what was watched, and the callbacks to play changes and ends with. */
function fakeWatch() {
  const watches: {
    key: string;
    version: string;
    changed: () => void;
    ended: (why: WatchEnd) => void;
    stopped: boolean;
  }[] = [];
  const watch: WatchSlices = (ns, service, version, changed, ended) => {
    const entry = { key: `${ns}/${service}`, version, changed, ended, stopped: false };
    watches.push(entry);
    return () => void (entry.stopped = true);
  };
  return { watches, watch };
}

/** Date.now() and setTimeout under the test's control, from now on. */
function fakeClock(t: TestContext) {
  t.mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_800_000_000_000 });
  return { advance: (ms: number) => t.mock.timers.tick(ms) };
}

const podsEndpoints = (version: string, pod: string): ServiceEndpoints => ({
  ...endpoints('10.96.0.7'),
  ports: new Map([[8000, [{ pod, port: 8080 }]]]),
  version,
});

/**
 * Routes with a fake watch and `read` giving the endpoints; `freshMs` (an hour unless given) is
 * how often they are read again without a watch (with one, every 10 s while in use); web.shop
 * is learned at 10.96.0.7 and asked for once (the first read).
 */
function watchedRoutes(read: () => Promise<ServiceEndpoints>, freshMs = 3_600_000) {
  const { watches, watch } = fakeWatch();
  const routes = new ServiceRoutes({ domain: 'cluster.local', read, watch, log, freshMs });
  routes.learn(answer('web.shop.svc.cluster.local', '10.96.0.7'));
  routes.route('10.96.0.7', 8000);
  return { routes, watches };
}

test("a change of the Service's slices is read at once, not when the endpoints are old; a burst once", async (t) => {
  const clock = fakeClock(t);
  let current = podsEndpoints('5', 'web-1');
  let reads = 0;
  const { routes, watches } = watchedRoutes(() => (reads++, Promise.resolve(current)));
  await settled();
  clock.advance(1_000);
  assert.equal(routes.route('10.96.0.7', 8000)?.pod, 'web-1');
  assert.deepEqual(
    watches.map((w) => [w.key, w.version]),
    [['shop/web', '5']],
    'watched from the version read',
  );
  // A rollout: the slices change, and the next connection goes to the new pod.
  current = podsEndpoints('9', 'web-2');
  watches[0]!.changed();
  await settled();
  assert.equal(routes.route('10.96.0.7', 8000)?.pod, 'web-2');
  assert.equal(reads, 2);
  // A burst of changes right after (a rollout of many pods): one read, 100 ms after the last.
  current = podsEndpoints('12', 'web-3');
  for (let i = 0; i < 5; i++) watches[0]!.changed();
  await settled();
  assert.equal(reads, 2, 'not yet');
  clock.advance(100);
  await settled();
  assert.equal(reads, 3);
  assert.equal(routes.route('10.96.0.7', 8000)?.pod, 'web-3');
  assert.equal(watches.length, 1, 'one watch, however many reads');
});

test('a change to a Service unused for 30 s is read at its next use, which takes the manager meanwhile', async (t) => {
  const clock = fakeClock(t);
  let reads = 0;
  const { routes, watches } = watchedRoutes(() => (reads++, Promise.resolve(podsEndpoints('5', 'web-1'))));
  await settled();
  clock.advance(25_000);
  watches[0]!.changed(); // used 25 s ago: read now
  await settled();
  assert.equal(reads, 2);
  clock.advance(6_000);
  watches[0]!.changed(); // used 31 s ago: only marked
  await settled();
  assert.equal(reads, 2, 'not read while unused');
  clock.advance(1_000); // the last read is 7 s old, younger than the watched re-read's 10 s
  assert.equal(routes.route('10.96.0.7', 8000), undefined, 'not routed on what the change made stale');
  await settled();
  assert.equal(reads, 3);
  assert.equal(routes.route('10.96.0.7', 8000)?.pod, 'web-1');
});

test('a change that waited for its read when the watch ended is not routed on', async (t) => {
  const clock = fakeClock(t);
  let reads = 0;
  const { routes, watches } = watchedRoutes(() => (reads++, Promise.resolve(podsEndpoints('5', 'web-1'))));
  await settled();
  watches[0]!.changed(); // within 100 ms of the last read: waits
  watches[0]!.ended(null);
  clock.advance(1_000);
  assert.equal(reads, 1, 'its timer went with the watch');
  assert.equal(routes.route('10.96.0.7', 8000), undefined);
  await settled();
  assert.equal(reads, 2);
  assert.equal(routes.route('10.96.0.7', 8000)?.pod, 'web-1');
});

test('a read that does not answer fails after 10 s; endpoints no watch kept for 30 s are not routed on', async (t) => {
  const clock = fakeClock(t);
  let hang = false;
  let reads = 0;
  const routes = new ServiceRoutes({
    domain: 'cluster.local',
    read: () => (reads++, hang ? new Promise(() => undefined) : Promise.resolve(podsEndpoints('5', 'web-1'))),
    log,
  });
  routes.learn(answer('web.shop.svc.cluster.local', '10.96.0.7'));
  routes.route('10.96.0.7', 8000);
  await settled();
  assert.equal(routes.route('10.96.0.7', 8000)?.pod, 'web-1');
  clock.advance(31_000); // no watch: too old to route on
  hang = true;
  assert.equal(routes.route('10.96.0.7', 8000), undefined);
  assert.equal(reads, 2);
  clock.advance(10_000);
  await settled();
  hang = false;
  assert.equal(routes.route('10.96.0.7', 8000), undefined, 'the hung read failed: the manager meanwhile');
  clock.advance(3_100);
  routes.route('10.96.0.7', 8000); // tried again, as after any failed read
  await settled();
  assert.equal(reads, 3);
  assert.equal(routes.route('10.96.0.7', 8000)?.pod, 'web-1');
});

test('changes that come during a read are read once more after it', async (t) => {
  const clock = fakeClock(t);
  const pending: ((e: ServiceEndpoints) => void)[] = [];
  const { routes, watches } = watchedRoutes(() => new Promise((resolve) => pending.push(resolve)));
  pending.shift()!(podsEndpoints('5', 'web-1'));
  await settled();
  clock.advance(1_000);
  watches[0]!.changed(); // a read starts
  watches[0]!.changed(); // two more changes while it runs
  watches[0]!.changed();
  assert.equal(pending.length, 1);
  pending.shift()!(podsEndpoints('6', 'web-1'));
  await settled();
  clock.advance(100);
  assert.equal(pending.length, 1, 'one more read for the changes during the first');
  pending.shift()!(podsEndpoints('8', 'web-3'));
  await settled();
  assert.equal(pending.length, 0);
  assert.equal(routes.route('10.96.0.7', 8000)?.pod, 'web-3');
});

test('an ended watch is started again from the next read (a second later if it was short-lived); a refused one leaves the namespace to polling for a minute', async (t) => {
  const clock = fakeClock(t);
  let version = 5;
  const { watches, watch } = fakeWatch();
  const routes = new ServiceRoutes({
    domain: 'cluster.local',
    read: () => Promise.resolve(podsEndpoints(String(version++), 'web-1')),
    watch,
    log,
  });
  const use = async (ms = 3_100) => {
    clock.advance(ms);
    routes.route('10.96.0.7', 8000);
    await settled();
  };
  routes.learn(answer('web.shop.svc.cluster.local', '10.96.0.7'));
  await use(0); // read 5, watched
  watches[0]!.ended(null); // the API server closed it
  await use(0); // read 6 at once, but no new watch in the same second
  assert.equal(watches.length, 1);
  await use(); // read 7, watched again
  assert.deepEqual(
    watches.map((w) => w.version),
    ['5', '7'],
  );
  watches[1]!.ended(Object.assign(new Error('forbidden'), { statusCode: 403 }));
  await use(); // read 8: polled, not watched
  await use(); // read 9
  assert.equal(watches.length, 2, 'no watch where it was refused');
  assert.equal(routes.route('10.96.0.7', 8000)?.pod, 'web-1', 'the direct path stays');
  await use(60_000); // read 10: a minute later, watched again
  assert.deepEqual(
    watches.map((w) => w.version),
    ['5', '7', '10'],
  );
  // The API server ends a watch after minutes: the next connection's read watches again at once.
  clock.advance(300_000);
  watches[2]!.ended(null);
  await use(0);
  assert.deepEqual(
    watches.map((w) => w.version),
    ['5', '7', '10', '11'],
  );
});

test('a read that fails while watched is tried again after freshMs, not the watched 10 s; a Service gone ends its watch', async (t) => {
  const clock = fakeClock(t);
  let fail: { code: number } | undefined;
  const { routes, watches } = watchedRoutes(
    () =>
      fail
        ? Promise.reject(Object.assign(new Error('failed'), fail))
        : Promise.resolve(podsEndpoints('5', 'web-1')),
    3_000,
  );
  await settled();
  fail = { code: 500 };
  watches[0]!.changed();
  clock.advance(100);
  await settled();
  assert.equal(routes.route('10.96.0.7', 8000), undefined, 'the manager meanwhile');
  fail = undefined;
  clock.advance(3_100);
  routes.route('10.96.0.7', 8000);
  await settled();
  assert.equal(routes.route('10.96.0.7', 8000)?.pod, 'web-1', 'read again after 3 s');
  assert.equal(watches[0]!.stopped, false);
  fail = { code: 404 };
  watches[0]!.changed();
  clock.advance(100);
  await settled();
  assert.equal(watches[0]!.stopped, true, 'nothing left to watch');
});

test('a Service is watched only for an address its spec gives, and nothing after close', async () => {
  const { watches, watch } = fakeWatch();
  let resolveRead: ((e: ServiceEndpoints) => void) | undefined;
  const routes = new ServiceRoutes({
    domain: 'cluster.local',
    read: () => new Promise((resolve) => (resolveRead = resolve)),
    watch,
    log,
  });
  routes.learn(answer('web.shop.svc.cluster.local', '10.96.0.99')); // not the Service's address
  routes.route('10.96.0.99', 8000);
  resolveRead!(podsEndpoints('5', 'web-1'));
  await settled();
  assert.equal(watches.length, 0);
  routes.learn(answer('api.shop.svc.cluster.local', '10.96.0.7'));
  routes.route('10.96.0.7', 8000);
  routes.close(); // the session ends while the read runs
  resolveRead!(podsEndpoints('5', 'web-1'));
  await settled();
  assert.equal(watches.length, 0);
});

test('close stops every watch', async () => {
  const { watches, watch } = fakeWatch();
  const routes = new ServiceRoutes({
    domain: 'cluster.local',
    read: (_ns, service) =>
      Promise.resolve({
        ...podsEndpoints('5', 'web-1'),
        clusterIPs: [service === 'web' ? '10.96.0.7' : '10.96.0.8'],
      }),
    watch,
    log,
  });
  routes.learn(answer('web.shop.svc.cluster.local', '10.96.0.7'));
  routes.learn(answer('api.shop.svc.cluster.local', '10.96.0.8'));
  routes.route('10.96.0.7', 8000);
  routes.route('10.96.0.8', 8000);
  await settled();
  assert.equal(watches.length, 2);
  routes.close();
  assert.deepEqual(
    watches.map((w) => w.stopped),
    [true, true],
  );
});

test('past 64 watches in use, a further Service is not watched, and routed all the same', async () => {
  const { watches, watch } = fakeWatch();
  const address = (i: number) => `10.96.1.${i}`;
  const routes = new ServiceRoutes({
    domain: 'cluster.local',
    read: (_ns, service) =>
      Promise.resolve({ ...podsEndpoints('5', 'web-1'), clusterIPs: [address(Number(service.slice(1)))] }),
    watch,
    log,
  });
  for (let i = 0; i < 65; i++) {
    routes.learn(answer(`s${i}.shop.svc.cluster.local`, address(i)));
    routes.route(address(i), 8000);
  }
  await settled();
  assert.equal(watches.length, 64);
  assert.equal(routes.route(address(64), 8000)?.pod, 'web-1', 'routed all the same');
});
