// Proves that undo records are trusted only when this install signed them about the object that
// carries them, stay in its namespace, and delete only what telepod created.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { UNDO_ANNOTATION, UNDO_MAC_ANNOTATION } from '../protocol/intercept.ts';
import { KubeApiError, type KubeApi, type KubeObject } from './kube-api.ts';
import { Signer } from './signer.ts';
import { retargeted, UndoBook, undoProblem, type UndoRecord } from './undo.ts';

const PATH = '/apis/apps/v1/namespaces/a/deployments/web';

/** An in-memory API: objects by path; records deletes and replaces. */
function fakeApi(objects: Record<string, KubeObject>) {
  const removed: string[] = [];
  const api = {
    get: (path: string) =>
      objects[path]
        ? Promise.resolve(structuredClone(objects[path]))
        : Promise.reject(new KubeApiError(404, 'not found')),
    replace: (path: string, body: KubeObject) => {
      objects[path] = body;
      return Promise.resolve(body);
    },
    remove: (path: string) => {
      removed.push(path);
      delete objects[path];
      return Promise.resolve();
    },
    list: () => Promise.resolve([]),
  } as unknown as KubeApi;
  return { api, removed };
}

const record: UndoRecord = {
  workload: PATH,
  services: [{ path: '/api/v1/namespaces/a/services/web', ports: [{ port: 80 }] }],
  deletes: ['/api/v1/namespaces/a/configmaps/telepod-agent-web'],
};

function book(api: KubeApi, key = randomBytes(32)) {
  const logged: string[] = [];
  return { undo: new UndoBook(api, new Signer(key), (m) => logged.push(m)), logged };
}

test('a record this install signed about the object carrying it is trusted', () => {
  const { undo } = book(fakeApi({}).api);
  const object = { metadata: { annotations: undo.annotations(record) } };
  assert.deepEqual(undo.recorded(object, PATH), record);
});

test('unsigned, wrongly signed, or another install’s records are ignored and logged', () => {
  const { undo, logged } = book(fakeApi({}).api);
  const other = book(fakeApi({}).api).undo;
  const text = JSON.stringify(record);
  const forged = [
    { [UNDO_ANNOTATION]: text },
    { [UNDO_ANNOTATION]: text, [UNDO_MAC_ANNOTATION]: 'AAAA' },
    other.annotations(record),
  ];
  for (const annotations of forged)
    assert.equal(undo.recorded({ metadata: { annotations } }, PATH), undefined);
  assert.equal(logged.filter((l) => l.includes('not signed by this install')).length, 3);
});

test('a signed record about another object is not used for this one', () => {
  const { undo } = book(fakeApi({}).api);
  const object = { metadata: { annotations: undo.annotations(record) } };
  assert.equal(undo.recorded(object, '/apis/apps/v1/namespaces/a/replicasets/web-123'), undefined);
});

test('records that reach outside their namespace or beyond telepod’s objects are refused', () => {
  const outside: UndoRecord[] = [
    { ...record, services: [{ path: '/api/v1/namespaces/b/services/web', ports: [] }] },
    { ...record, deletes: ['/api/v1/namespaces/b/configmaps/precious'] },
    { ...record, deletes: ['/api/v1/namespaces/a/secrets/db'] },
    { ...record, deletes: ['/apis/rbac.authorization.k8s.io/v1/clusterroles/admin'] },
    { ...record, podsToRoll: { namespace: 'kube-system', selector: 'k8s-app=kube-dns', owner: 'u' } },
    { ...record, workload: '/api/v1/namespaces/a/secrets/x' },
  ];
  for (const undo of outside) assert.ok(undoProblem(undo), JSON.stringify(undo));
  assert.equal(undoProblem(record), undefined);
});

test('restore deletes only objects telepod labelled', async () => {
  const ours = '/api/v1/namespaces/a/configmaps/telepod-agent-web';
  const theirs = '/api/v1/namespaces/a/services/web-extra';
  const { api, removed } = fakeApi({
    [PATH]: { metadata: { annotations: {} }, spec: { template: {} } },
    [ours]: { metadata: { labels: { 'app.kubernetes.io/managed-by': 'telepod' } } },
    [theirs]: { metadata: { labels: {} } },
  });
  const { undo, logged } = book(api);
  await undo.restore({ workload: PATH, services: [], deletes: [ours, theirs] });
  assert.deepEqual(removed, [ours]);
  assert.match(logged.join('\n'), /not deleting .*web-extra: telepod did not create it/);
});

test('restore removes the bridge slices of the Services it points back (once their own slices carry the number), only telepod’s, before the workload', async () => {
  const service = '/api/v1/namespaces/a/services/web';
  const bridge = (family: string) =>
    `/apis/discovery.k8s.io/v1/namespaces/a/endpointslices/telepod-bridge-web-${family}`;
  const labels = {
    'app.kubernetes.io/managed-by': 'telepod',
    'endpointslice.kubernetes.io/managed-by': 'telepod.io',
  };
  const objects: Record<string, KubeObject> = {
    [PATH]: { metadata: { annotations: {} }, spec: { template: {} } },
    [service]: { metadata: { name: 'web' }, spec: { ports: [{ port: 80, targetPort: 'telepod-19000' }] } },
    [bridge('ipv4')]: { metadata: { labels } },
    [bridge('ipv6')]: { metadata: { labels: {} } }, // not telepod's
  };
  const { api, removed } = fakeApi(objects);
  const order: string[] = [];
  const replace = api.replace.bind(api);
  api.replace = (path, body) => (order.push(`replace ${path}`), replace(path, body));
  const remove = api.remove.bind(api);
  api.remove = (path) => (order.push(`remove ${path}`), remove(path));
  // The Service's own slice takes the number back on the second look: the bridge waits for it.
  const bridged = {
    metadata: { labels },
    endpoints: [{ conditions: { ready: true } }],
    ports: [{ port: 8080 }],
  };
  const slices = [[19000], [8080]].map((ports) => [
    bridged, // a bridge carries the number all along: it does not count
    { endpoints: [{ conditions: { ready: true } }], ports: ports.map((port) => ({ port })) },
  ]);
  api.list = <T extends KubeObject>() => (
    order.push('list'),
    Promise.resolve((slices.shift() ?? []) as unknown as T[])
  );
  await book(api).undo.restore({
    workload: PATH,
    services: [{ path: service, ports: [{ port: 80, targetPort: 8080 }] }],
    deletes: [],
  });
  assert.deepEqual(removed, [bridge('ipv4')]);
  assert.deepEqual(order, [
    `replace ${service}`,
    'list',
    'list',
    `remove ${bridge('ipv4')}`,
    `replace ${PATH}`,
  ]);
});

test("a ReplicaSet's restore deletes only its own pods, not others with the same labels", async () => {
  const pods = [
    { metadata: { name: 'own', ownerReferences: [{ kind: 'ReplicaSet', name: 'web', uid: 'rs-1' }] } },
    { metadata: { name: 'other', ownerReferences: [{ kind: 'ReplicaSet', name: 'api', uid: 'rs-2' }] } },
    { metadata: { name: 'bare' } },
  ];
  const removed: string[] = [];
  const api = {
    get: () => Promise.resolve({ metadata: { annotations: {} }, spec: {} }),
    replace: (_: string, body: KubeObject) => Promise.resolve(body),
    list: () => Promise.resolve(pods),
    remove: (path: string) => {
      removed.push(path);
      return Promise.resolve();
    },
  } as unknown as KubeApi;
  const path = '/apis/apps/v1/namespaces/a/replicasets/web';
  await book(api).undo.restore({
    workload: path,
    services: [],
    deletes: [],
    podsToRoll: { namespace: 'a', selector: 'app=web', owner: 'rs-1' },
  });
  assert.deepEqual(removed, ['/api/v1/namespaces/a/pods/own']);
});

test('apply changes the workload only; restore points the Services back before the workload', async () => {
  const service = '/api/v1/namespaces/a/services/web';
  const objects: Record<string, KubeObject> = {
    [PATH]: { metadata: { name: 'web' }, spec: { template: { spec: { containers: [] } } } },
    [service]: { metadata: { name: 'web' }, spec: { ports: [{ port: 80, targetPort: 8080 }] } },
  };
  const { api } = fakeApi(objects);
  const replaced: string[] = [];
  const replace = api.replace.bind(api);
  api.replace = (path: string, body: KubeObject) => (replaced.push(path), replace(path, body));
  const { undo } = book(api);
  const changed = { spec: { containers: [{ name: 'telepod-agent' }] } };
  const moved = [{ port: 80, targetPort: 19000 }];
  const own = { ...record, services: [{ path: service, ports: [{ port: 80, targetPort: 8080 }] }] };
  await undo.apply(own, { template: changed });
  assert.deepEqual(replaced, [PATH], 'the Service is untouched until the new pods serve');
  await undo.pointServices([{ path: service, ports: moved }]);
  assert.deepEqual((objects[service] as { spec: { ports: unknown } }).spec.ports, moved);
  replaced.length = 0;
  await undo.restore(own);
  assert.deepEqual(replaced, [service, PATH]);
  assert.deepEqual((objects[service] as { spec: { ports: unknown } }).spec.ports, [
    { port: 80, targetPort: 8080 },
  ]);
});

test('only the targetPorts telepod moves change: other edits to the Service stay', () => {
  const current = [
    { name: 'http', port: 80, targetPort: 8080, appProtocol: 'http' }, // appProtocol added meanwhile
    { name: 'extra', port: 81, targetPort: 9000 }, // a port added meanwhile
    { name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 },
  ];
  assert.deepEqual(
    retargeted(current, [
      { name: 'http', port: 80, targetPort: 19000 },
      { name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 },
    ]),
    [
      { name: 'http', port: 80, targetPort: 19000, appProtocol: 'http' },
      { name: 'extra', port: 81, targetPort: 9000 },
      { name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353 },
    ],
  );
  // A port that had no targetPort (it defaults to the port) gets none back.
  assert.deepEqual(retargeted([{ port: 80, targetPort: 19000 }], [{ port: 80 }]), [{ port: 80 }]);
});
