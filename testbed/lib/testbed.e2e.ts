// Proves the testbed on itself: a ready v1.35.4 node, the seed's services talking through
// cluster DNS, and two workstation netns that each reach the API server and nothing else.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  createNamespace,
  deploySeed,
  ensureTestbed,
  inWorkstation,
  kubectl,
  secondWorkstation,
  SEED_PROBE,
  testbedStatus,
  type TestbedStatus,
} from './testbed.ts';

const NS = 'tpbed-e2e-seed';
let tb: TestbedStatus;
let deleteNamespace: () => Promise<void>;

before(async () => {
  tb = await ensureTestbed();
  deleteNamespace = await createNamespace(tb, NS);
  await deploySeed(tb, NS);
});
after(async () => {
  await deleteNamespace?.();
});

test('status reports a ready v1.35.4 cluster and the two workstation netns', async () => {
  const status = await testbedStatus();
  assert.equal(status.ready, true);
  assert.equal(status.kubernetesVersion, 'v1.35.4');
  assert.match(status.workstation.kubeconfig, /^\//);
  assert.match(status.workstation2.kubeconfig, /^\//);
  assert.notEqual(status.workstation2.netns, status.workstation.netns);
  assert.deepEqual(secondWorkstation(status).workstation, status.workstation2);
});

test('the node is Ready and reports the built version', async () => {
  const node = JSON.parse(await kubectl(tb, ['get', 'node', 'tpbed-node', '-o', 'json'])) as {
    status: { conditions: { type: string; status: string }[]; nodeInfo: { kubeletVersion: string } };
  };
  assert.equal(node.status.conditions.find((c) => c.type === 'Ready')?.status, 'True');
  assert.equal(node.status.nodeInfo.kubeletVersion, 'v1.35.4');
});

test("the seed's service-a reaches service-b by its short DNS name", async () => {
  const out = await kubectl(tb, ['-n', NS, 'exec', 'deploy/service-a', '--', ...SEED_PROBE]);
  assert.equal(out, 'service-a got: Hello, world!\n');
});

for (const [label, station] of [
  ['the workstation', (t: TestbedStatus) => t],
  ['the second workstation', secondWorkstation],
] as const) {
  test(`${label} reaches the API server with its kubeconfig`, async () => {
    const ws = station(tb);
    const result = await inWorkstation(ws, ws.kubectl, [
      '--kubeconfig',
      ws.workstation.kubeconfig,
      '-n',
      NS,
      'get',
      'svc',
      'service-b',
      '-o',
      'name',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), 'service/service-b');
  });

  test(`${label} cannot reach service-b's ClusterIP or pod IP`, async () => {
    const clusterIP = (
      await kubectl(tb, ['-n', NS, 'get', 'svc', 'service-b', '-o', 'jsonpath={.spec.clusterIP}'])
    ).trim();
    const podIP = (
      await kubectl(tb, [
        '-n',
        NS,
        'get',
        'pods',
        '-l',
        'app=service-b',
        '-o',
        'jsonpath={.items[0].status.podIP}',
      ])
    ).trim();
    assert.match(clusterIP, /^10\.96\./);
    assert.match(podIP, /^10\.244\./);
    for (const ip of [clusterIP, podIP]) {
      const result = await inWorkstation(station(tb), 'curl', [
        '-s',
        '--max-time',
        '3',
        `http://${ip}:8000/`,
      ]);
      assert.notEqual(result.code, 0, `${label} reached ${ip}: ${result.stdout}`);
    }
  });
}
