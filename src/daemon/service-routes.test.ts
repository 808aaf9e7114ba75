// Which connections go straight to a pod: a Service address learned from a cluster DNS answer,
// once its endpoints are read and the Service's own spec names that address; nothing else.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Packet } from 'dns-packet';
import { pino } from 'pino';
import type { ServiceEndpoints } from '../kube/service-endpoints.ts';
import { ServiceRoutes } from './service-routes.ts';

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
