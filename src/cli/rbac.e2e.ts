// e2e on the testbed: the developer's own Kubernetes rights decide. A developer whose kubeconfig
// is a ServiceAccount token with `edit` in namespace A, plus list pods and port-forward on the
// manager, connects, reaches Services and intercepts in A; in B the intercept and the listing
// are refused with the API server's own words, and B stays as it was. A manager installed with
// `--namespaces A` has Roles there and nothing cluster-wide, refuses B, and uninstall removes
// its Roles.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import {
  applyManifest,
  createNamespace,
  inWorkstation,
  kubectl,
  nodeServerManifest,
  ON_SIGTERM_EXIT,
  ensureTestbed,
  telepodInWorkstation,
  waitForRollout,
  waitUntil,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';

const A = 'telepod-e2e-dev-a';
const B = 'telepod-e2e-dev-b';
const SCOPED = 'telepod-e2e-scoped';
const LOCAL_PORT = 8400;
let tb: TestbedStatus;
let devKubeconfig: string;
let localServer: ChildProcess | undefined;
const cleanups: (() => Promise<void>)[] = [];

const admin = (...args: string[]) => telepodInWorkstation(tb, ...args);
/** telepod as the namespace-limited developer (a later --kubeconfig wins over the helper's). */
const dev = (...args: string[]) => telepodInWorkstation(tb, '--kubeconfig', devKubeconfig, ...args);

const serverScript = (answer: string) =>
  `${ON_SIGTERM_EXIT}require('http').createServer((q, s) => s.end('${answer}\\n')).listen(8000)`;

async function spec(namespace: string, kind: string, name: string): Promise<string> {
  return kubectl(tb, ['-n', namespace, 'get', kind, name, '-o', 'jsonpath={.spec}']);
}

async function curlFromWorkstation(url: string): Promise<string> {
  return (await inWorkstation(tb, 'curl', ['-s', '--max-time', '5', url])).stdout;
}

/** What a pod in `namespace` gets from service-b there. */
async function fromCluster(namespace: string): Promise<string> {
  const script = `fetch('http://service-b:8000/').then((r) => r.text()).then((t) => process.stdout.write(t), (e) => process.stdout.write('error'))`;
  return kubectl(tb, ['-n', namespace, 'exec', 'deploy/client', '--', 'node', '-e', script]);
}

/** A kubeconfig for ServiceAccount `dev` of namespace A: the workstation's cluster, a bearer token. */
async function devConfig(): Promise<string> {
  const token = (await kubectl(tb, ['-n', A, 'create', 'token', 'dev', '--duration=2h'])).trim();
  const ws = parse(await readFile(tb.workstation.kubeconfig, 'utf8')) as {
    clusters: { name: string; cluster: Record<string, unknown> }[];
  };
  const cluster = ws.clusters[0]!;
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'tb', cluster: cluster.cluster }],
    users: [{ name: 'dev', user: { token } }],
    contexts: [{ name: 'dev', context: { cluster: 'tb', user: 'dev', namespace: A } }],
    'current-context': 'dev',
  };
  const file = join(await mkdtemp(join(tmpdir(), 'telepod-dev-')), 'dev.conf');
  await writeFile(file, stringify(config), { mode: 0o600 });
  return file;
}

before(async () => {
  tb = await ensureTestbed();
  await admin('quit');
  cleanups.push(await createNamespace(tb, A), await createNamespace(tb, B));
  // The manager is installed by an admin; the developer only uses it.
  const installed = await admin('install');
  assert.equal(installed.code, 0, installed.stderr);
  const client = `${ON_SIGTERM_EXIT}require('http').createServer((q, s) => s.end('client')).listen(8000)`;
  await applyManifest(
    tb,
    [
      nodeServerManifest(tb, A, 'service-b', serverScript('Hello from A')),
      nodeServerManifest(tb, A, 'client', client),
      nodeServerManifest(tb, B, 'service-b', serverScript('Hello from B')),
      nodeServerManifest(tb, B, 'client', client),
      `apiVersion: v1
kind: ServiceAccount
metadata: { name: dev, namespace: ${A} }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: dev-edit, namespace: ${A} }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit }
subjects: [{ kind: ServiceAccount, name: dev, namespace: ${A} }]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: { name: telepod-e2e-dev, namespace: telepod }
rules:
  - { apiGroups: [""], resources: [pods], verbs: [get, list] }
  - { apiGroups: [""], resources: [pods/portforward], verbs: [get, create] }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: { name: telepod-e2e-dev, namespace: telepod }
roleRef: { apiGroup: rbac.authorization.k8s.io, kind: Role, name: telepod-e2e-dev }
subjects: [{ kind: ServiceAccount, name: dev, namespace: ${A} }]
`,
    ].join('---\n'),
  );
  cleanups.push(() =>
    kubectl(tb, [
      '-n',
      'telepod',
      'delete',
      'role,rolebinding',
      'telepod-e2e-dev',
      '--ignore-not-found',
    ]).then(() => undefined),
  );
  for (const ns of [A, B]) {
    await waitForRollout(tb, ns, 'service-b');
    await waitForRollout(tb, ns, 'client');
  }
  devKubeconfig = await devConfig();
  localServer = spawn(
    'nsenter',
    [
      `--net=/run/netns/${tb.workstation.netns}`,
      process.execPath,
      '-e',
      `require('http').createServer((q, s) => s.end('local\\n')).listen(${LOCAL_PORT})`,
    ],
    { stdio: 'ignore' },
  );
});

after(async () => {
  localServer?.kill();
  await admin('quit');
  await admin('uninstall', '--manager-namespace', SCOPED);
  for (const cleanup of cleanups) await cleanup();
  if (devKubeconfig) await rm(dirname(devKubeconfig), { recursive: true, force: true });
});

test('a developer with edit in A and port-forward to the manager connects, reaches Services, intercepts in A', async () => {
  const connected = await dev('connect');
  assert.equal(connected.code, 0, connected.stderr);
  assert.equal(await curlFromWorkstation('http://service-b:8000/'), 'Hello from A\n');
  assert.equal(await curlFromWorkstation(`http://service-b.${B}:8000/`), 'Hello from B\n');
  const intercepted = await dev('intercept', 'service-b', '--port', `${LOCAL_PORT}:8000`);
  assert.equal(intercepted.code, 0, intercepted.stderr);
  await waitUntil(
    'A’s service-b traffic to reach the workstation',
    30_000,
    async () => (await fromCluster(A)) === 'local\n',
  );
  const listed = await dev('list', '-o', 'json');
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /"holder":/);
  const left = await dev('leave', 'service-b', '--restore');
  assert.equal(left.code, 0, left.stderr);
});

test('in B the intercept and the listing are refused with the missing permission named; B is unchanged', async () => {
  const before = [await spec(B, 'deploy', 'service-b'), await spec(B, 'svc', 'service-b')];
  const refused = await dev('-n', B, 'intercept', 'service-b', '--port', `${LOCAL_PORT}:8000`);
  assert.notEqual(refused.code, 0);
  assert.match(
    refused.stderr,
    new RegExp(`cannot patch resource "deployments" in API group "apps" in the namespace "${B}"`),
  );
  const listed = await dev('-n', B, 'list');
  assert.notEqual(listed.code, 0);
  assert.match(
    listed.stderr,
    new RegExp(`cannot list resource "\\w+" in API group "[\\w.]*" in the namespace "${B}"`),
  );
  assert.deepEqual([await spec(B, 'deploy', 'service-b'), await spec(B, 'svc', 'service-b')], before);
  assert.equal(await fromCluster(B), 'Hello from B\n');
  await dev('quit');
});

test('install --namespaces A: Roles in A only, no ClusterRole; intercepts in A work, B is refused; uninstall removes the Roles', async () => {
  const plan = await admin(
    'install',
    '--manager-namespace',
    SCOPED,
    '--namespaces',
    A,
    '--dry-run',
    '-o',
    'yaml',
  );
  assert.equal(plan.code, 0, plan.stderr);
  assert.doesNotMatch(plan.stdout, /kind: ClusterRole/);
  assert.match(plan.stdout, new RegExp(`kind: Role\\n[^]*namespace: ${A}`));
  const connected = await admin('-n', A, 'connect', '--manager-namespace', SCOPED, '--namespaces', A);
  assert.equal(connected.code, 0, connected.stderr);
  const clusterWide = await kubectl(tb, ['get', 'clusterrole,clusterrolebinding', '-o', 'name']);
  assert.doesNotMatch(clusterWide, new RegExp(`telepod-manager-${SCOPED}`));
  assert.match(
    await kubectl(tb, ['-n', A, 'get', 'role', '-o', 'name']),
    new RegExp(`telepod-manager-${SCOPED}`),
  );
  const inA = await admin('-n', A, 'intercept', 'service-b', '--port', `${LOCAL_PORT}:8000`);
  assert.equal(inA.code, 0, inA.stderr);
  await waitUntil(
    'A’s traffic to reach the workstation',
    30_000,
    async () => (await fromCluster(A)) === 'local\n',
  );
  const before = await spec(B, 'deploy', 'service-b');
  const inB = await admin('-n', B, 'intercept', 'service-b', '--port', `${LOCAL_PORT}:8000`);
  assert.notEqual(inB.code, 0);
  assert.match(inB.stderr, new RegExp(`installed for namespaces ${A} only, not ${B}`));
  assert.equal(await spec(B, 'deploy', 'service-b'), before);
  assert.equal((await admin('quit')).code, 0);
  await waitUntil(
    'A’s service-b to answer again',
    30_000,
    async () => (await fromCluster(A)) === 'Hello from A\n',
  );
  const removed = await admin('uninstall', '--manager-namespace', SCOPED);
  assert.equal(removed.code, 0, removed.stderr);
  assert.doesNotMatch(
    await kubectl(tb, ['-n', A, 'get', 'role,rolebinding', '-o', 'name']),
    /telepod-manager/,
  );
});
