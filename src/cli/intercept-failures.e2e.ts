// e2e on the testbed: what goes wrong around an intercept changes nothing for good. Bad input
// gets a clear message and a non-zero exit; a rollout that fails is undone with the cluster's
// reason; nothing listening locally resets the cluster's client at once; a reset crosses an
// intercept as a reset, both ways; a second session is
// refused a held port; after a kill -9 of the daemon the manager restores the workload.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writeClaims } from '../kube/claims.ts';
import { loadKubeConfig } from '../kube/config.ts';
import { openPortForward } from '../kube/portforward.ts';
import { Tunnel } from '../daemon/tunnel.ts';
import { MANAGER_PATHS, MANAGER_PORT } from '../protocol/paths.ts';
import type { DaemonStatus } from '../protocol/daemon-api.ts';
import {
  applyManifest,
  inWorkstation,
  kubectl,
  nodeServerManifest,
  ON_SIGTERM_EXIT,
  startInWorkstation,
  waitForRollout,
  waitUntil,
} from '../../testbed/lib/testbed.ts';
import { interceptBed, MARKER } from './intercept-bed.fixture.ts';

const bed = interceptBed('telepod-e2e-intercept-failures');
const {
  NS,
  telepod,
  telepodOk,
  fromCluster,
  untilFromCluster,
  snapshot,
  bridges,
  workloadsState,
  assertRestored,
} = bed;

before(() => bed.setUp());
after(() => bed.tearDown());

test('bad input: a clear message, a non-zero exit, and nothing changed', async () => {
  const cases: [string[], RegExp][] = [
    [['intercept', 'nope', '--port', '8000'], /no Deployment, StatefulSet or ReplicaSet named nope/],
    [['intercept', 'lonely', '--port', '8000'], /no Service selects the pods of Deployment lonely/],
    [
      ['intercept', 'service-b', '--port', '8000:9999'],
      /port 9999 is not exposed by the Services of service-b \(service-b:8000\/http\)/,
    ],
    [['intercept', 'numeric', '--port', '8000'], /numeric is reached on several ports .* choose one/],
    [['intercept', 'bare', '--port', '8000'], /Pod bare cannot be intercepted/],
    [
      ['intercept', 'service-b', '--port', '8000', '--container', 'nope'],
      /container nope not found in Deployment service-b \(containers: service-b\)/,
    ],
    [['intercept', 'service-b', '--port', 'x'], /--port x: "x" is not a port number/],
    [
      ['intercept', 'service-b', '--port', '8000', '--timeout', 'soon'],
      /--timeout soon: expected whole seconds/,
    ],
    [['run', '--swap-deployment', 'numeric:nope', '--', 'true'], /container nope not found/],
  ];
  for (const [args, message] of cases) {
    const result = await telepod(...args);
    assert.notEqual(result.code, 0, args.join(' '));
    assert.match(result.stderr, message, args.join(' '));
  }
  await telepod('connect');
  assert.deepEqual(await workloadsState(), bed.original);
});

// The agent's image is the installer's, so the failure comes from the workload itself: its pods
// take env from a ConfigMap that is deleted before the intercept, so the new pods cannot start.
test('a failing rollout restores the workload and shows the reason from the cluster', async () => {
  await applyManifest(
    bed.tb,
    `apiVersion: v1
kind: ConfigMap
metadata: { name: fragile-config, namespace: ${NS} }
data: { A: a }
---
${nodeServerManifest(bed.tb, NS, 'fragile', `${ON_SIGTERM_EXIT}for (const port of [8000, 8001]) require('http').createServer((q, s) => s.end('fragile')).listen(port)`, { container: { envFrom: [{ configMapRef: { name: 'fragile-config' } }] } })}
---
# A second Service by a number no container names: the intercept points it at the agent by a
# name of its own, with a bridge slice holding the old pod meanwhile.
apiVersion: v1
kind: Service
metadata: { name: fragile-n, namespace: ${NS} }
spec: { selector: { app: fragile }, ports: [{ port: 80, targetPort: 8001 }] }`,
  );
  await waitForRollout(bed.tb, NS, 'fragile');
  await kubectl(bed.tb, ['-n', NS, 'delete', 'configmap', 'fragile-config']);
  const before = await Promise.all([snapshot('deploy', 'fragile'), snapshot('svc', 'fragile-n')]);
  const result = await telepod('intercept', 'fragile', '--port', '8000:http');
  assert.equal(result.code, 1, result.stderr);
  assert.match(result.stderr, /did not become ready: pod \S+ container \S+: CreateContainerConfigError/);
  assert.deepEqual(await Promise.all([snapshot('deploy', 'fragile'), snapshot('svc', 'fragile-n')]), before);
  assert.equal(await bridges(), '');
  await untilFromCluster('http://fragile-n/', 'fragile');
  await assertRestored();
});

test('nothing listening locally: the cluster client is reset at once, and status warns', async () => {
  await telepodOk('intercept', 'service-b', '--port', '8999:8000');
  await waitUntil('a reset from the intercepted port', 15_000, async () => {
    const started = Date.now();
    const answer = await fromCluster('http://service-b:8000/');
    assert.ok(Date.now() - started < 5000, 'the refused connection did not hang');
    return /^error: (ECONNRESET|UND_ERR_SOCKET)$/.test(answer);
  });
  const status = await telepod('status');
  assert.match(status.stdout, /warning: nothing accepts connections on localhost:8999/);
  await telepodOk('leave', 'service-b', '--restore');
  await assertRestored();
});

/** A raw TCP server on `port` in the workstation that resets, or records how its client went. */
function resettingServerScript(port: number, outcomeFile: string): string {
  return `const fs = require('fs');
require('net').createServer((c) => {
  let said = '';
  const record = (outcome) => said.startsWith('hold') && fs.writeFileSync(${JSON.stringify(outcomeFile)}, outcome);
  c.on('error', (e) => record('error ' + e.code));
  c.on('end', () => record('end'));
  c.on('data', (d) => {
    said += d;
    if (said === 'reset-me\\n' || said === 'hold\\n') c.write('LOCAL\\n');
    if (said === 'reset-me\\ngot\\n') c.resetAndDestroy();
  });
}).listen(${port});`;
}

/** What a cluster client of service-b:8000 saw: `mode` is what it says first (see the server). */
function resettingClientScript(mode: 'reset-me' | 'hold'): string {
  return `const s = require('net').connect(8000, 'service-b');
let got = '';
const say = (what) => { process.stdout.write((got.startsWith('LOCAL\\n') ? 'local ' : 'app ') + what); process.exit(0); };
s.on('data', (d) => {
  got += d;
  if (got !== 'LOCAL\\n') return;
  if (${JSON.stringify(mode)} === 'hold') { s.resetAndDestroy(); say('reset sent'); } else s.write('got\\n');
});
s.on('end', () => say('end'));
s.on('error', (e) => say('error ' + e.code));
setTimeout(() => say('timed out'), 10000);
s.write(${JSON.stringify(mode)} + '\\n');`;
}

test('a reset crosses an intercept as a reset, both ways: neither end takes a cut connection as complete', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'telepod-e2e-reset-'));
  const outcomeFile = join(dir, 'outcome');
  const server = startInWorkstation(bed.tb, resettingServerScript(8997, outcomeFile));
  try {
    await telepodOk('intercept', 'service-b', '--port', '8997:8000');
    const fromClient = (mode: 'reset-me' | 'hold') => bed.inServiceA(resettingClientScript(mode));
    // The workstation's server resets: the cluster client gets the reset, not an end.
    let seen = '';
    await waitUntil('a cluster client to reach the workstation', 15_000, async () =>
      (seen = await fromClient('reset-me')).startsWith('local '),
    );
    assert.equal(seen, 'local error ECONNRESET');
    // The cluster client resets: the workstation's server gets the reset, not an end.
    assert.equal(await fromClient('hold'), 'local reset sent');
    await waitUntil('the workstation server to see the client go', 10_000, async () =>
      readFile(outcomeFile, 'utf8').then(
        () => true,
        () => false,
      ),
    );
    assert.equal(await readFile(outcomeFile, 'utf8'), 'error ECONNRESET');
  } finally {
    server.kill();
    await rm(dir, { recursive: true, force: true });
    await telepod('leave', 'service-b', '--restore'); // also after a failure: the next test starts clean
  }
  await assertRestored();
});

test('a second session cannot take an intercepted port, and is told who holds it', async () => {
  await telepodOk('intercept', 'service-b', '--port', '8000');
  const { kc } = loadKubeConfig({ kubeconfig: bed.tb.kubeconfig });
  const pod = (
    await kubectl(bed.tb, [
      '-n',
      'telepod',
      'get',
      'pod',
      '-l',
      'app.kubernetes.io/name=telepod-manager',
      '-o',
      'jsonpath={.items[0].metadata.name}',
    ])
  ).trim();
  const rival = await Tunnel.open(await openPortForward(kc, 'telepod', pod, MANAGER_PORT), {
    holder: 'rival@elsewhere',
  });
  const intercept = {
    mode: 'intercept' as const,
    namespace: NS,
    workload: 'service-b',
    ports: [{ local: 8000 }],
  };
  const replace = { ...intercept, mode: 'replace' as const };
  try {
    // Without the claim its daemon writes with the developer's kubeconfig, the manager does nothing.
    await assert.rejects(
      rival.call(MANAGER_PATHS.intercepts, intercept),
      new RegExp(`holds no claim to patch deployments ${NS}/service-b`),
    );
    for (const [request, refusal] of [
      [intercept, /port service-b:8000\/http of Deployment service-b is already intercepted by \S+@\S+/],
      [replace, /Deployment service-b is already intercepted by \S+@\S+/],
    ] as const) {
      const claims = await writeClaims(kc, request, rival.grant);
      await assert
        .rejects(rival.call(MANAGER_PATHS.intercepts, request), refusal)
        .finally(() => claims.release());
    }
  } finally {
    await rival.end();
    rival.close();
  }
  await untilFromCluster('http://localhost:8000/', `service-a got: ${MARKER}:/\n`);
  await telepodOk('leave', 'service-b', '--restore');
  await assertRestored();
});

test('kill -9 of the daemon: the manager restores the workload within 30 s', async () => {
  await telepodOk('intercept', 'service-b', '--port', '8000');
  const status = JSON.parse((await telepod('status', '-o', 'json')).stdout) as DaemonStatus;
  process.kill(status.daemonPid, 'SIGKILL');
  const killed = Date.now();
  await waitUntil('the manager to restore service-b', 30_000, async () => {
    const annotations = await kubectl(bed.tb, [
      '-n',
      NS,
      'get',
      'deploy',
      'service-b',
      '-o',
      'jsonpath={.metadata.annotations}',
    ]);
    return !annotations.includes('telepod.io/undo');
  });
  process.stdout.write(`# restored ${((Date.now() - killed) / 1000).toFixed(1)} s after kill -9\n`);
  await telepod('quit'); // clears the capture rules the killed daemon left
  await assertRestored();
  assert.equal((await inWorkstation(bed.tb, 'nft', ['list', 'table', 'ip', 'telepod'])).code, 1);
});
