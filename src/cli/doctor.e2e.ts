// e2e on the testbed: `telepod doctor` reports every check OK for a connected admin, names the
// missing traffic manager, and names a permission a developer lacks, with the fix.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
import {
  createNamespace,
  ensureTestbed,
  kubectl,
  telepodInWorkstation,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';
import type { Check } from './doctor/check.ts';

const NS = 'telepod-e2e-doctor';
const VIEWER = 'telepod-e2e-viewer';
let tb: TestbedStatus;
let deleteNamespace: () => Promise<void>;
let dir: string;

const telepod = (...args: string[]) => telepodInWorkstation(tb, '-n', NS, ...args);

async function doctor(
  ...args: string[]
): Promise<{ code: number; report: { ok: boolean; checks: Check[] }; text: string }> {
  const json = await telepod('doctor', '-o', 'json', ...args);
  const text = await telepod('doctor', ...args);
  return {
    code: json.code,
    report: JSON.parse(json.stdout) as { ok: boolean; checks: Check[] },
    text: text.stdout,
  };
}

before(async () => {
  tb = await ensureTestbed();
  await telepod('quit');
  deleteNamespace = await createNamespace(tb, NS);
  dir = await mkdtemp(join(tmpdir(), 'telepod-doctor-'));
});

after(async () => {
  await telepod('quit');
  await kubectl(tb, ['delete', 'rolebinding', '-n', NS, VIEWER, '--ignore-not-found']);
  await deleteNamespace?.();
  await rm(dir, { recursive: true, force: true });
});

test('connected on the testbed, every check is OK', async () => {
  const connected = await telepod('connect');
  assert.equal(connected.code, 0, connected.stderr);
  const { code, report, text } = await doctor();
  assert.equal(code, 0, text);
  const failing = report.checks.filter((c) => !c.ok);
  assert.deepEqual(failing, [], text);
  const names = report.checks.map((c) => c.name);
  for (const name of [
    'nftables',
    'FUSE',
    'root for the daemon',
    'API server',
    'traffic manager',
    'DNS hook-up',
    'may create pods/portforward in telepod',
  ]) {
    assert.ok(names.includes(name), `${name} is checked: ${names.join(', ')}`);
  }
  assert.match(text, /^OK {3}traffic manager: ready in telepod/m);
});

test('a missing traffic manager is named, with what to run', async () => {
  const { code, report, text } = await doctor('--manager-namespace', 'telepod-e2e-nowhere');
  assert.equal(code, 1);
  const manager = report.checks.find((c) => c.name === 'traffic manager');
  assert.equal(manager?.ok, false);
  assert.match(manager?.detail ?? '', /none runs in namespace telepod-e2e-nowhere/);
  assert.match(text, /FAIL traffic manager: .*\n {5}fix: telepod connect installs it/);
});

test('a developer who may only view is told which rights are missing, and for what', async () => {
  await kubectl(tb, ['-n', NS, 'create', 'serviceaccount', VIEWER]);
  await kubectl(tb, [
    '-n',
    NS,
    'create',
    'rolebinding',
    VIEWER,
    '--clusterrole=view',
    `--serviceaccount=${NS}:${VIEWER}`,
  ]);
  const token = (await kubectl(tb, ['-n', NS, 'create', 'token', VIEWER, '--duration=1h'])).trim();
  const admin = parse(await readFile(tb.workstation.kubeconfig, 'utf8')) as {
    clusters: { name: string; cluster: Record<string, unknown> }[];
  };
  const kubeconfig = join(dir, 'viewer.yaml');
  await writeFile(
    kubeconfig,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'viewer',
      clusters: [{ name: 'tpbed', cluster: admin.clusters[0]!.cluster }],
      contexts: [{ name: 'viewer', context: { cluster: 'tpbed', user: 'viewer', namespace: NS } }],
      users: [{ name: 'viewer', user: { token } }],
    }),
  );
  const { code, report, text } = await doctor('--kubeconfig', kubeconfig);
  assert.equal(code, 1, text);
  const refused = report.checks.filter((c) => !c.ok).map((c) => c.name);
  assert.ok(refused.includes('may create pods/portforward in telepod'), text);
  assert.ok(refused.includes(`may patch deployments in ${NS}`), text);
  assert.ok(!refused.includes(`may list deployments in ${NS}`), 'view may list');
  assert.match(text, /FAIL may patch deployments in telepod-e2e-doctor: refused: intercept and replace/);
  assert.match(text, /fix: ask a cluster admin for "create" on pods\/portforward in telepod/);
});
