// e2e on the testbed: `telepod install --agent-idle`. A workload left with its agent dormant is
// restored by the manager once the install's idle time passes, with no quit and no
// `leave --restore`; with 0 it is restored at leave; a bad time is refused before anything is
// installed. The manager is one of its own, limited to the test's namespace.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  applyManifest,
  createNamespace,
  ensureTestbed,
  kubectl,
  nodeServerManifest,
  ON_SIGTERM_EXIT,
  telepodInWorkstation,
  waitForRollout,
  waitUntil,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';
import type { WorkloadInfo } from '../protocol/intercept.ts';

const NS = 'telepod-e2e-idle';
const MNS = 'telepod-e2e-idle-manager';
const APP = 'idle-app';
let tb: TestbedStatus;
let deleteNamespace: (() => Promise<void>) | undefined;
let original = '';

const telepod = (...args: string[]) => telepodInWorkstation(tb, '-n', NS, ...args);
async function telepodOk(...args: string[]) {
  const result = await telepod(...args);
  assert.equal(result.code, 0, `telepod ${args.join(' ')}: ${result.stderr}`);
  return result;
}
const appSpec = () => kubectl(tb, ['-n', NS, 'get', 'deploy', APP, '-o', 'jsonpath={.spec}']);
async function dormantAgent(): Promise<boolean | undefined> {
  const listed = JSON.parse((await telepodOk('list', '-o', 'json')).stdout) as WorkloadInfo[];
  return listed.find((w) => w.name === APP)?.dormantAgent;
}
const install = (idle: string) =>
  telepod('install', '--manager-namespace', MNS, '--namespaces', NS, '--agent-idle', idle);

before(async () => {
  tb = await ensureTestbed();
  await telepod('quit');
  deleteNamespace = await createNamespace(tb, NS);
  const script = `${ON_SIGTERM_EXIT}require('http').createServer((q, s) => s.end('app')).listen(8000)`;
  await applyManifest(tb, nodeServerManifest(tb, NS, APP, script));
  await waitForRollout(tb, NS, APP);
  original = await appSpec();
});

after(async () => {
  await telepod('quit');
  await telepod('uninstall', '--manager-namespace', MNS);
  await deleteNamespace?.();
});

test('install --agent-idle with a bad time: a usage error, and nothing installed', async () => {
  const result = await install('5x');
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /--agent-idle 5x: give a time such as 90s, 15m or 2h/);
  const manager = await kubectl(tb, ['get', 'namespace', MNS, '--ignore-not-found', '-o', 'name']);
  assert.equal(manager.trim(), '');
});

test("a dormant agent is restored once the install's idle time passes, with no quit or --restore", async () => {
  assert.equal((await install('4s')).code, 0);
  await telepodOk('connect', '--manager-namespace', MNS);
  await telepodOk('intercept', APP, '--port', '8470:http');
  assert.notEqual(await appSpec(), original);
  const left = await telepodOk('leave', APP);
  const leftAt = Date.now();
  assert.match(left.stdout, /its agent stays for a quick re-intercept until quit or 4 s idle/);
  // Still there after the leave: the idle time, not the leave, restores it.
  assert.equal(await dormantAgent(), true);
  assert.notEqual(await appSpec(), original);
  await waitUntil(
    'the workload to be restored after 4 s idle',
    60_000,
    async () => (await appSpec()) === original,
  );
  assert.ok(Date.now() - leftAt >= 3_000, `restored ${Date.now() - leftAt} ms after the leave`);
  assert.equal(await dormantAgent(), undefined);
  await telepodOk('quit');
});

test('install --agent-idle 0: the last leave restores the workload at once', async () => {
  assert.equal((await install('0')).code, 0);
  await kubectl(tb, ['-n', MNS, 'rollout', 'status', 'deploy/telepod-manager', '--timeout=120s']);
  await telepodOk('connect', '--manager-namespace', MNS);
  await telepodOk('intercept', APP, '--port', '8470:http');
  assert.notEqual(await appSpec(), original);
  const left = await telepodOk('leave', APP);
  assert.equal(left.stdout, `left Deployment ${NS}/${APP}\n`);
  assert.equal(await appSpec(), original);
  await telepodOk('quit');
});
