// Proves how requested ports resolve to Service ports and container ports, that ambiguous
// or unknown ports are refused with a message listing what exists, and how Services are listed.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TelepodError } from '../protocol/errors.ts';
import {
  findWorkload,
  onlyService,
  resolveServicePorts,
  selectingServices,
  type Service,
  type Workload,
} from './workloads.ts';
import { KubeApiError, type KubeApi } from './kube-api.ts';

const workload: Workload = {
  kind: 'Deployment',
  metadata: { name: 'web' },
  spec: {
    selector: { matchLabels: { app: 'web' } },
    template: {
      metadata: { labels: { app: 'web' } },
      spec: { containers: [{ name: 'app', ports: [{ name: 'http', containerPort: 8080 }] }] },
    },
  },
};
const web: Service = {
  metadata: { name: 'web' },
  spec: {
    selector: { app: 'web' },
    ports: [
      { name: 'http', port: 80, targetPort: 'http' },
      { name: 'admin', port: 9000 },
      { name: 'dns', port: 53, protocol: 'UDP' },
    ],
  },
};

test('a port by name or number resolves to its container port', () => {
  const [byName, byNumber] = resolveServicePorts(
    workload,
    [web],
    [
      { local: 3000, remote: 'http' },
      { local: 3001, remote: '9000' },
    ],
  );
  assert.equal(byName!.containerPort, 8080);
  assert.equal(byName!.targetName, 'http');
  assert.equal(byNumber!.containerPort, 9000);
  assert.equal(byNumber!.targetName, undefined);
});

test('no remote port with several TCP ports, or an unknown one, is refused listing the ports', () => {
  assert.throws(
    () => resolveServicePorts(workload, [web], [{ local: 3000 }]),
    /web is reached on several ports \(web:80\/http, web:9000\/admin\): choose one/,
  );
  assert.throws(
    () => resolveServicePorts(workload, [web], [{ local: 3000, remote: '53' }]),
    (err: unknown) =>
      err instanceof TelepodError && err.exitCode === 2 && /port 53 is not exposed/.test(err.message),
  );
});

test('the same port on two Services asks for --service', () => {
  const other: Service = { ...web, metadata: { name: 'web-2' } };
  assert.throws(
    () => resolveServicePorts(workload, [web, other], [{ local: 3000, remote: 'http' }]),
    /several Service ports match http .*--service/,
  );
});

test('findWorkload names what exists instead: a DaemonSet is refused as such', async () => {
  const api = {
    get: (path: string) =>
      path.includes('/daemonsets/')
        ? Promise.resolve({})
        : Promise.reject(new KubeApiError(404, 'not found')),
  } as unknown as KubeApi;
  await assert.rejects(findWorkload(api, 'ns', 'agent'), /DaemonSet agent cannot be intercepted/);
  const none = { get: () => Promise.reject(new KubeApiError(404, 'not found')) } as unknown as KubeApi;
  await assert.rejects(
    findWorkload(none, 'ns', 'x'),
    /no Deployment, StatefulSet or ReplicaSet named x in namespace ns/,
  );
});

test("selectingServices lists consistently, or from the API server's cache when asked; onlyService picks one", async () => {
  const listed: string[] = [];
  const other: Service = { metadata: { name: 'other' }, spec: { selector: { app: 'other' }, ports: [] } };
  const api = {
    list: (path: string) => (listed.push(path), Promise.resolve([web, other])),
  } as unknown as KubeApi;
  assert.deepEqual(await selectingServices(api, 'ns', workload), [web]);
  assert.deepEqual(await selectingServices(api, 'ns', workload, { cached: true }), [web]);
  assert.deepEqual(listed, [
    '/api/v1/namespaces/ns/services',
    '/api/v1/namespaces/ns/services?resourceVersion=0',
  ]);
  assert.deepEqual(onlyService([web], workload, 'web'), [web]);
  assert.throws(
    () => onlyService([web], workload, 'other'),
    /Service other does not select Deployment web \(Services that do: web\)/,
  );
  const none = { list: () => Promise.resolve([other]) } as unknown as KubeApi;
  await assert.rejects(
    selectingServices(none, 'ns', workload),
    /no Service selects the pods of Deployment web/,
  );
});
