// e2e on the testbed: `telepod install` (also --dry-run) and `uninstall` of the traffic manager.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import {
  ensureTestbed,
  kubectl,
  telepodInWorkstation,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';

const MNS = 'telepod-e2e-install';
const BAD_MNS = 'telepod-e2e-badimage';
let tb: TestbedStatus;

const telepod = (...args: string[]) => telepodInWorkstation(tb, ...args);
const namespaceExists = async () =>
  (await kubectl(tb, ['get', 'namespace', MNS, '--ignore-not-found', '-o', 'name'])).trim() !== '';

before(async () => {
  tb = await ensureTestbed();
  await kubectl(tb, ['delete', 'namespace', MNS, '--ignore-not-found', '--timeout=120s']);
});
after(async () => {
  await kubectl(tb, ['delete', 'namespace', MNS, '--ignore-not-found', '--wait=false']);
  await telepod('uninstall', '--manager-namespace', BAD_MNS);
  await kubectl(tb, [
    'delete',
    'clusterrole,clusterrolebinding',
    `telepod-manager-${MNS}`,
    '--ignore-not-found',
  ]);
});

test('install --dry-run -o yaml prints the manifests and changes nothing', async () => {
  const result = await telepod('install', '--manager-namespace', MNS, '--dry-run', '-o', 'yaml');
  assert.equal(result.code, 0, result.stderr);
  const kinds = parseAllDocuments(result.stdout).map((d) => (d.toJS() as { kind: string }).kind);
  assert.deepEqual(kinds, [
    'Namespace',
    'ServiceAccount',
    'ClusterRole',
    'ClusterRoleBinding',
    'Role',
    'RoleBinding',
    'Secret',
    'ConfigMap',
    'Service',
    'Deployment',
  ]);
  assert.match(result.stdout, /image: docker\.io\/library\/node:22-bookworm-slim/);
  assert.equal(await namespaceExists(), false);
});

test('install creates a manager that becomes ready; a second install is a no-op', async () => {
  const first = await telepod('install', '--manager-namespace', MNS);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(
    first.stdout.trim(),
    `traffic manager installed or upgraded in namespace ${MNS} (sessions and intercepts carry over)`,
  );
  await kubectl(tb, ['-n', MNS, 'rollout', 'status', 'deploy/telepod-manager', '--timeout=120s']);
  const second = await telepod('install', '--manager-namespace', MNS);
  assert.equal(second.stdout.trim(), `traffic manager in namespace ${MNS} is up to date`);
});

test('uninstall deletes the manager namespace and its ClusterRole', async () => {
  const result = await telepod('uninstall', '--manager-namespace', MNS);
  assert.equal(result.code, 0, result.stderr);
  const roles = await kubectl(tb, ['get', 'clusterrole,clusterrolebinding', '-o', 'name']);
  assert.doesNotMatch(roles, new RegExp(`telepod-manager-${MNS}`));
  const phase = await kubectl(tb, [
    'get',
    'namespace',
    MNS,
    '--ignore-not-found',
    '-o',
    'jsonpath={.status.phase}',
  ]);
  assert.ok(phase === '' || phase === 'Terminating', phase);
});

// The image's registry is the node's own loopback, where nothing listens: no packet leaves the VM.
test('a manager that cannot start fails connect quickly with the reason from the cluster', async () => {
  const started = Date.now();
  const result = await telepod(
    '-n',
    'default',
    'connect',
    '--manager-namespace',
    BAD_MNS,
    '--image',
    '127.0.0.1:1/no/such:image',
  );
  await telepod('quit');
  assert.equal(result.code, 1, result.stderr);
  assert.match(
    result.stderr,
    new RegExp(
      `the traffic manager in namespace ${BAD_MNS} cannot start: pod \\S+: (ErrImagePull|ImagePullBackOff)`,
    ),
  );
  assert.ok(Date.now() - started < 60_000, 'connect waited for the full timeout');
  assert.equal((await telepod('status')).stdout.trim(), 'not connected');
});
