// Proves the bridge slices: which endpoints they carry (the old pods', as the EndpointSlice
// controller has them, per address family), and that they are written only when those change,
// owned by their Service, taken over or removed when a stopped manager left them, and removed;
// and the relay slices that put the manager in a Service in place of relayed ports' old pods.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  bridgeEndpoints,
  bridgePath,
  bridgePaths,
  Bridges,
  relayPath,
  BRIDGE_MANAGER,
  type Slice,
} from './bridge-slices.ts';
import { KubeApiError, type KubeApi, type KubeObject } from './kube-api.ts';

const pod = (name: string) => ({ kind: 'Pod', name, namespace: 'a' });
const controller = {
  labels: { 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
};
const ours = {
  labels: {
    'app.kubernetes.io/managed-by': 'telepod',
    'endpointslice.kubernetes.io/managed-by': BRIDGE_MANAGER,
  },
};
const slices: Slice[] = [
  {
    metadata: { name: 'web-abc', ...controller },
    addressType: 'IPv4',
    endpoints: [
      { addresses: ['10.0.0.2'], conditions: { ready: true }, targetRef: pod('old-1'), nodeName: 'n1' },
      { addresses: ['10.0.0.1'], conditions: {}, targetRef: pod('old-2') },
      { addresses: ['10.0.0.3'], conditions: { ready: false, terminating: true }, targetRef: pod('old-3') },
      { addresses: ['10.0.0.4'], conditions: { ready: true }, targetRef: pod('new-1') },
      { addresses: ['10.0.0.5'], conditions: { ready: true } }, // not a pod
    ],
    ports: [],
  },
  {
    metadata: { name: 'web-def', ...controller },
    addressType: 'IPv4',
    endpoints: [
      { addresses: ['10.0.0.2'], conditions: { ready: true }, targetRef: pod('old-1'), nodeName: 'n1' },
    ],
  },
  {
    metadata: { name: 'web-v6', ...controller },
    addressType: 'IPv6',
    endpoints: [{ addresses: ['fd00::2'], conditions: { ready: true }, targetRef: pod('old-1') }],
  },
  {
    metadata: { name: 'telepod-bridge-web-ipv4', ...ours },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.0.0.9'], conditions: { ready: true }, targetRef: pod('gone') }],
  },
  {
    metadata: { name: 'someone-elses', labels: { 'endpointslice.kubernetes.io/managed-by': 'other' } },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.9.9.9'], conditions: { ready: true }, targetRef: pod('elsewhere') }],
  },
];

test("a bridge carries the controller's endpoints of pods not ours, once each, of its family, as they are", () => {
  assert.deepEqual(bridgeEndpoints(slices, 'IPv4', new Set(['new-1'])), [
    { addresses: ['10.0.0.1'], conditions: {}, targetRef: pod('old-2') },
    { addresses: ['10.0.0.2'], conditions: { ready: true }, targetRef: pod('old-1'), nodeName: 'n1' },
    // Terminating: kube-proxy uses it only while no endpoint is ready, as in the controller's slice.
    { addresses: ['10.0.0.3'], conditions: { ready: false, terminating: true }, targetRef: pod('old-3') },
  ]);
  assert.deepEqual(bridgeEndpoints(slices, 'IPv6', new Set()), [
    { addresses: ['fd00::2'], conditions: { ready: true }, targetRef: pod('old-1') },
  ]);
  assert.deepEqual(bridgePaths('a', ['web']), [
    '/apis/discovery.k8s.io/v1/namespaces/a/endpointslices/telepod-bridge-web-ipv4',
    '/apis/discovery.k8s.io/v1/namespaces/a/endpointslices/telepod-relay-web-ipv4',
    '/apis/discovery.k8s.io/v1/namespaces/a/endpointslices/telepod-bridge-web-ipv6',
    '/apis/discovery.k8s.io/v1/namespaces/a/endpointslices/telepod-relay-web-ipv6',
  ]);
});

/** An API holding `listed` as the Service's slices and `existing` objects; records writes. */
function fakeApi(listed: Slice[], existing: Record<string, KubeObject> = {}) {
  const writes: string[] = [];
  const objects = { ...existing };
  const api = {
    list: () => Promise.resolve(structuredClone(listed)),
    get: (path: string) =>
      objects[path]
        ? Promise.resolve(structuredClone(objects[path]))
        : Promise.reject(new KubeApiError(404, 'not found')),
    create: (dir: string, body: Slice) => {
      const path = `${dir}/${body.metadata!.name!}`;
      if (objects[path]) return Promise.reject(new KubeApiError(409, 'exists'));
      writes.push(`create ${path}`);
      objects[path] = body;
      return Promise.resolve(body);
    },
    replace: (path: string, body: Slice) => {
      if (!objects[path]) return Promise.reject(new KubeApiError(404, 'not found'));
      writes.push(`replace ${path}`);
      objects[path] = body;
      return Promise.resolve(body);
    },
    remove: (path: string) => {
      writes.push(`remove ${path}`);
      delete objects[path];
      return Promise.resolve();
    },
  } as unknown as KubeApi;
  return { api, writes, objects };
}

const web = { name: 'web', ports: [{ target: 8080 }] };

test('bridges are written when their endpoints change, owned by the Service, at the old target, and removed', async () => {
  const v4 = bridgePath('a', 'web', 'IPv4');
  const { api, writes, objects } = fakeApi(slices.slice(0, 1));
  const bridges = new Bridges(api, 'a', [
    { name: 'web', uid: 'u1', ports: [{ name: 'http', target: 8080 }] },
  ]);
  await bridges.refresh(new Set());
  await bridges.refresh(new Set()); // nothing changed: nothing written
  assert.deepEqual(writes, [`create ${v4}`]); // no IPv6 endpoints: no IPv6 bridge
  const slice = objects[v4] as Slice;
  assert.deepEqual(slice.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
  assert.deepEqual(slice.metadata!.labels, { ...ours.labels, 'kubernetes.io/service-name': 'web' });
  assert.deepEqual(slice.metadata!.ownerReferences, [
    { apiVersion: 'v1', kind: 'Service', name: 'web', uid: 'u1' },
  ]);
  assert.equal(slice.endpoints!.length, 4);
  await bridges.refresh(new Set(['old-1', 'old-2', 'old-3', 'new-1']));
  assert.deepEqual(writes.slice(1), [`replace ${v4}`]);
  assert.deepEqual((objects[v4] as Slice).endpoints, []);
  await bridges.close();
  assert.deepEqual(writes.slice(2), [`remove ${v4}`]);
  assert.equal(objects[v4], undefined);
});

test('a family with nothing to hold at first gets its bridge made once it has', async () => {
  const v6 = bridgePath('a', 'web', 'IPv6');
  const listed = slices.slice(0, 1);
  const { api, writes } = fakeApi(listed);
  const bridges = new Bridges(api, 'a', [web]);
  await bridges.refresh(new Set());
  listed.push(slices[2]!); // an IPv6 endpoint appears
  await bridges.refresh(new Set());
  assert.deepEqual(writes.slice(1), [`create ${v6}`]);
});

test('a bridge a stopped manager left is taken over, or removed with nothing to hold; a slice not ours is not', async () => {
  const v4 = bridgePath('a', 'web', 'IPv4');
  const v6 = bridgePath('a', 'web', 'IPv6');
  const left = { metadata: { name: 'left', ...ours } };
  const { api, writes } = fakeApi(slices.slice(0, 1), { [v4]: left, [v6]: structuredClone(left) });
  await new Bridges(api, 'a', [web]).refresh(new Set());
  assert.deepEqual(writes, [`replace ${v4}`, `remove ${v6}`]);
  const theirs = fakeApi(slices.slice(0, 1), { [v4]: { metadata: { name: 'theirs', labels: {} } } });
  await assert.rejects(new Bridges(theirs.api, 'a', [web]).refresh(new Set()), /exists and is not telepod's/);
  await new Bridges(theirs.api, 'a', [web]).close();
  assert.deepEqual(theirs.writes, []);
});

test('a relayed port is in a relay slice naming the manager, not in the bridge; both go at close', async () => {
  const bridge = bridgePath('a', 'web', 'IPv4');
  const relay = relayPath('a', 'web', 'IPv4');
  const { api, writes, objects } = fakeApi(slices.slice(0, 1));
  const bridges = new Bridges(
    api,
    'a',
    [
      {
        name: 'web',
        uid: 'u1',
        ports: [
          { name: 'http', target: 8080, relay: 40001 },
          { name: 'admin', target: 9000 },
        ],
      },
    ],
    '10.1.0.7',
  );
  await bridges.refresh(new Set());
  await bridges.refresh(new Set()); // nothing changed: nothing written
  assert.deepEqual(writes, [`create ${relay}`, `create ${bridge}`]);
  const relaySlice = objects[relay] as Slice;
  assert.equal(relaySlice.addressType, 'IPv4');
  assert.deepEqual(relaySlice.ports, [{ name: 'http', port: 40001, protocol: 'TCP' }]);
  assert.deepEqual(relaySlice.endpoints, [
    { addresses: ['10.1.0.7'], conditions: { ready: true, serving: true, terminating: false } },
  ]);
  assert.deepEqual(relaySlice.metadata!.labels, { ...ours.labels, 'kubernetes.io/service-name': 'web' });
  assert.deepEqual(relaySlice.metadata!.ownerReferences, [
    { apiVersion: 'v1', kind: 'Service', name: 'web', uid: 'u1' },
  ]);
  // The old pods keep only the port nobody relays.
  assert.deepEqual((objects[bridge] as Slice).ports, [{ name: 'admin', port: 9000, protocol: 'TCP' }]);
  assert.equal((objects[bridge] as Slice).endpoints!.length, 4);
  await bridges.close();
  assert.deepEqual(writes.slice(2), [`remove ${bridge}`, `remove ${relay}`]);
  assert.deepEqual(Object.keys(objects), []);
});

test("a relay slice has the manager's family; the other family's old pods keep the relayed port", async () => {
  const relay = relayPath('a', 'web', 'IPv6');
  const v4 = bridgePath('a', 'web', 'IPv4');
  const { api, writes, objects } = fakeApi(slices);
  const service = { name: 'web', ports: [{ target: 8080, relay: 40002 }] };
  const bridges = new Bridges(api, 'a', [service], 'fd00::7');
  await bridges.refresh(new Set());
  // The IPv6 old pods have no port left to serve: no IPv6 bridge.
  assert.deepEqual(writes, [`create ${relay}`, `create ${v4}`]);
  assert.equal((objects[relay] as Slice).addressType, 'IPv6');
  assert.deepEqual((objects[relay] as Slice).ports, [{ name: '', port: 40002, protocol: 'TCP' }]);
  assert.deepEqual((objects[v4] as Slice).ports, [{ name: '', port: 8080, protocol: 'TCP' }]);
  assert.equal((objects[v4] as Slice).endpoints!.length, 4);
  await bridges.close();
  assert.deepEqual(writes.slice(2), [`remove ${v4}`, `remove ${relay}`]);
});
