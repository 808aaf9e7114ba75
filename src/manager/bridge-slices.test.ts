// Proves the bridge slices: which endpoints they carry (the old pods' ready ones, per address
// family), and that they are written only when those change, taken over when left behind, and removed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  bridgeEndpoints,
  bridgePath,
  bridgePaths,
  Bridges,
  BRIDGE_MANAGER,
  type Slice,
} from './bridge-slices.ts';
import { KubeApiError, type KubeApi, type KubeObject } from './kube-api.ts';

const pod = (name: string) => ({ kind: 'Pod', name, namespace: 'a' });
const slices: Slice[] = [
  {
    metadata: {
      name: 'web-abc',
      labels: { 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    },
    addressType: 'IPv4',
    endpoints: [
      { addresses: ['10.0.0.2'], conditions: { ready: true }, targetRef: pod('old-1'), nodeName: 'n1' },
      { addresses: ['10.0.0.1'], conditions: {}, targetRef: pod('old-2') }, // ready unset: ready
      { addresses: ['10.0.0.3'], conditions: { ready: false, terminating: true }, targetRef: pod('old-3') },
      { addresses: ['10.0.0.4'], conditions: { ready: true }, targetRef: pod('new-1') },
      { addresses: ['10.0.0.5'], conditions: { ready: true } }, // not a pod
    ],
    ports: [],
  },
  {
    metadata: { name: 'web-def' },
    addressType: 'IPv4',
    endpoints: [
      { addresses: ['10.0.0.2'], conditions: { ready: true }, targetRef: pod('old-1'), nodeName: 'n1' },
    ],
  },
  {
    metadata: { name: 'web-v6' },
    addressType: 'IPv6',
    endpoints: [{ addresses: ['fd00::2'], conditions: { ready: true }, targetRef: pod('old-1') }],
  },
  {
    metadata: {
      name: 'telepod-bridge-web-ipv4',
      labels: { 'endpointslice.kubernetes.io/managed-by': BRIDGE_MANAGER },
    },
    addressType: 'IPv4',
    endpoints: [{ addresses: ['10.0.0.9'], conditions: { ready: true }, targetRef: pod('gone') }],
  },
];

test('a bridge carries the ready endpoints of other pods than ours, once each, of its family, not its own', () => {
  const ready = { ready: true, serving: true, terminating: false };
  assert.deepEqual(bridgeEndpoints(slices, 'IPv4', new Set(['new-1'])), [
    { addresses: ['10.0.0.1'], conditions: ready, targetRef: pod('old-2') },
    { addresses: ['10.0.0.2'], conditions: ready, targetRef: pod('old-1'), nodeName: 'n1' },
  ]);
  assert.deepEqual(bridgeEndpoints(slices, 'IPv6', new Set()), [
    { addresses: ['fd00::2'], conditions: ready, targetRef: pod('old-1') },
  ]);
  assert.deepEqual(bridgePaths('a', ['web']), [
    '/apis/discovery.k8s.io/v1/namespaces/a/endpointslices/telepod-bridge-web-ipv4',
    '/apis/discovery.k8s.io/v1/namespaces/a/endpointslices/telepod-bridge-web-ipv6',
  ]);
});

/** An API holding `listed` as the Service's slices; records writes. */
function fakeApi(listed: Slice[], existing: Record<string, KubeObject> = {}) {
  const writes: string[] = [];
  const objects = { ...existing };
  const api = {
    list: () => Promise.resolve(structuredClone(listed)),
    create: (dir: string, body: Slice) => {
      const path = `${dir}/${body.metadata!.name!}`;
      if (objects[path]) return Promise.reject(new KubeApiError(409, 'exists'));
      writes.push(`create ${path}`);
      objects[path] = body;
      return Promise.resolve(body);
    },
    replace: (path: string, body: Slice) => {
      writes.push(`replace ${path}`);
      objects[path] = body;
      return Promise.resolve(body);
    },
    remove: (path: string) => {
      writes.push(`remove ${path}`);
      if (!objects[path]) return Promise.reject(new KubeApiError(404, 'not found'));
      delete objects[path];
      return Promise.resolve();
    },
  } as unknown as KubeApi;
  return { api, writes, objects };
}

test('bridges are written when their endpoints change, at the targets the old pods serve, and removed', async () => {
  const v4 = bridgePath('a', 'web', 'IPv4');
  const listed = slices.slice(0, 1);
  const { api, writes, objects } = fakeApi(listed);
  const bridges = new Bridges(api, 'a', [{ name: 'web', ports: [{ name: 'http', target: 8080 }] }]);
  await bridges.refresh(new Set());
  await bridges.refresh(new Set()); // nothing changed: nothing written
  assert.deepEqual(writes, [`create ${v4}`]); // no IPv6 endpoints: no IPv6 bridge
  const slice = objects[v4] as Slice;
  assert.deepEqual(slice.ports, [{ name: 'http', port: 8080, protocol: 'TCP' }]);
  assert.equal(slice.metadata!.labels!['kubernetes.io/service-name'], 'web');
  assert.equal(slice.metadata!.labels!['app.kubernetes.io/managed-by'], 'telepod');
  assert.equal(slice.endpoints!.length, 3);
  await bridges.refresh(new Set(['old-1', 'old-2', 'new-1']));
  assert.deepEqual(writes.slice(1), [`replace ${v4}`]);
  assert.deepEqual((objects[v4] as Slice).endpoints, []);
  await bridges.close();
  assert.deepEqual(writes.slice(2), [`remove ${v4}`]);
  assert.equal(objects[v4], undefined);
});

test('a bridge left by a manager that stopped is taken over', async () => {
  const v4 = bridgePath('a', 'web', 'IPv4');
  const { api, writes } = fakeApi(slices.slice(0, 1), { [v4]: { metadata: { name: 'left' } } });
  await new Bridges(api, 'a', [{ name: 'web', ports: [{ target: 8080 }] }]).refresh(new Set());
  assert.deepEqual(writes, [`replace ${v4}`]);
});
