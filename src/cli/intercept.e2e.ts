// e2e on the testbed: `telepod intercept / replace / leave / list` and `run --swap-deployment /
// --expose` send service-a's real requests to a server in the workstation netns, and put every
// workload and Service back exactly as it was on leave and on exit; the intercepted container's
// environment reaches the command. Refusals and failures: intercept-failures.e2e.ts.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { InterceptInfo, WorkloadInfo } from '../protocol/intercept.ts';
import { daemonLog } from '../protocol/daemon-api.ts';
import { applyManifest, kubectl, waitForRollout, waitUntil } from '../../testbed/lib/testbed.ts';
import { interceptBed, MARKER, nodeAppManifest, SECRET } from './intercept-bed.fixture.ts';

const bed = interceptBed('telepod-e2e-intercept');
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

test('list shows the workloads, their Services, and that nothing is intercepted', async () => {
  const result = await telepod('list', '-o', 'json');
  assert.equal(result.code, 0, result.stderr);
  const list = JSON.parse(result.stdout) as {
    name: string;
    services: { name: string }[];
    intercepts: unknown[];
  }[];
  const serviceB = list.find((w) => w.name === 'service-b');
  assert.deepEqual(
    serviceB?.services.map((s) => s.name),
    ['service-b'],
  );
  assert.deepEqual(serviceB?.intercepts, []);
  assert.deepEqual(list.map((w) => w.name).sort(), ['envy', 'lonely', 'numeric', 'service-a', 'service-b']);
});

test('intercept of a named targetPort: service-a reaches the local server; leave restores', async () => {
  const started = Date.now();
  const result = await telepod('intercept', 'service-b', '--port', '8000:http', '-o', 'json');
  assert.equal(result.code, 0, result.stderr);
  const info = JSON.parse(result.stdout) as InterceptInfo;
  await untilFromCluster('http://localhost:8000/', `service-a got: ${MARKER}:/\n`);
  const firstRequest = (Date.now() - started) / 1000;
  process.stdout.write(
    `# intercept to first intercepted request: ${firstRequest.toFixed(1)} s (agent ready in ${info.readySeconds} s)\n`,
  );
  // The Service is untouched: its named port now names the agent's port.
  assert.deepEqual(await snapshot('svc', 'service-b'), bed.original[1]);
  const listed = JSON.parse((await telepod('list', '-o', 'json')).stdout) as {
    name: string;
    intercepts: { holder: string }[];
  }[];
  assert.equal(listed.find((w) => w.name === 'service-b')?.intercepts.length, 1);
  const left = await telepod('leave', 'service-b', '--restore');
  assert.equal(left.code, 0, left.stderr);
  await assertRestored();
});

/** The names of a Deployment's running pods (not those being deleted). */
async function podNames(deployment: string): Promise<string[]> {
  const list = JSON.parse(
    await kubectl(bed.tb, ['-n', NS, 'get', 'pods', '-l', `app=${deployment}`, '-o', 'json']),
  ) as { items: { metadata: { name: string; deletionTimestamp?: string } }[] };
  return list.items
    .filter((pod) => !pod.metadata.deletionTimestamp)
    .map((pod) => pod.metadata.name)
    .sort();
}

test('leave keeps the agent dormant (the app answers); intercepting again needs no rollout; quit restores', async () => {
  await telepodOk('intercept', 'service-b', '--port', '8000:http');
  await untilFromCluster('http://localhost:8000/', `service-a got: ${MARKER}:/\n`);
  const pods = await podNames('service-b');
  const left = await telepodOk('leave', 'service-b');
  assert.match(left.stdout, /its agent stays for a quick re-intercept/);
  await untilFromCluster('http://localhost:8000/', 'service-a got: Hello, world!\n');
  const listed = JSON.parse((await telepodOk('list', '-o', 'json')).stdout) as WorkloadInfo[];
  const serviceB = listed.find((w) => w.name === 'service-b');
  assert.deepEqual(serviceB?.intercepts, []);
  assert.equal(serviceB?.dormantAgent, true);

  const started = Date.now();
  const again = JSON.parse(
    (await telepodOk('intercept', 'service-b', '--port', '8000:http', '-o', 'json')).stdout,
  ) as InterceptInfo;
  await untilFromCluster('http://localhost:8000/', `service-a got: ${MARKER}:/\n`);
  process.stdout.write(
    `# re-intercept after leave to first intercepted request: ${((Date.now() - started) / 1000).toFixed(2)} s (manager: ${again.readySeconds} s)\n`,
  );
  // The same pods: the workload was not rolled out again.
  assert.deepEqual(await podNames('service-b'), pods);

  // Left again, a replace takes the dormant agent out first and works as on a fresh workload.
  await telepodOk('leave', 'service-b');
  await telepodOk('replace', 'service-b', '--port', '8000:http');
  await untilFromCluster('http://localhost:8000/', `service-a got: ${MARKER}:/\n`);
  await telepodOk('leave', 'service-b'); // a replace is restored at once
  await assertRestored();

  // Left with its agent kept, then `leave --restore` (no intercept to name): restored now.
  await telepodOk('intercept', 'service-b', '--port', '8000:http');
  await telepodOk('leave', 'service-b');
  const restored = await telepodOk('leave', 'service-b', '--restore');
  assert.match(restored.stdout, /^left Deployment \S+\/service-b\n$/);
  await assertRestored();

  // Intercepted and left once more, then the session ends: the workload is restored exactly.
  await telepodOk('intercept', 'service-b', '--port', '8000:http');
  await telepodOk('leave', 'service-b');
  await telepodOk('quit');
  await assertRestored();
});

test('intercept of a numeric targetPort moves only that port; the other stays with the app', async () => {
  const result = await telepod('intercept', 'numeric', '--port', '8000:web');
  assert.equal(result.code, 0, result.stderr);
  // The numeric targetPorts now name the agent's ports; the bridge that held the old pods is gone.
  const targets = await kubectl(bed.tb, [
    '-n',
    NS,
    'get',
    'svc',
    'numeric',
    '-o',
    'jsonpath={.spec.ports[*].targetPort}',
  ]);
  assert.match(targets, /^telepod-\d+ telepod-\d+$/);
  assert.equal(await bridges(), '');
  await untilFromCluster('http://numeric/x', `${MARKER}:/x\n`);
  await untilFromCluster('http://numeric:9000/', 'numeric app 9000\n');
  const left = await telepod('leave', 'numeric', '--restore');
  assert.equal(left.code, 0, left.stderr);
  await waitUntil(
    'numeric to answer from the app',
    60_000,
    async () => (await fromCluster('http://numeric/')) === 'numeric app 8000\n',
  );
  assert.deepEqual(await workloadsState(), bed.original);
});

test('a cold intercept is served through the manager while the new pods are not ready yet', async () => {
  // "slow": one numeric targetPort; its pods are ready 8 s after they start, so the
  // intercept's rollout lasts at least that long.
  await applyManifest(
    bed.tb,
    nodeAppManifest(
      bed.tb,
      NS,
      'slow',
      "require('http').createServer((q, s) => s.end('slow app\\n')).listen(8000)",
      '[{ name: web, port: 80, targetPort: 8000 }]',
      8,
    ),
  );
  try {
    await waitForRollout(bed.tb, NS, 'slow');
    const original = await Promise.all([snapshot('deploy', 'slow'), snapshot('svc', 'slow')]);
    // A client in service-a's pod opens a new connection every 100 ms, until 15 s after the first
    // answer from here: when that came (the testbed's nodes share the host's clock), how many
    // failed, and when the app answered after it.
    const poller = `const http = require('http'); const t0 = Date.now(); let failed = 0, first = 0; const app = [];
      const ask = () => new Promise((done) => { const q = http.get({ host: 'slow', path: '/', agent: false, timeout: 5000 }, (r) => {
        let body = ''; r.on('data', (d) => (body += d)); r.on('end', () => done(body)); });
        q.on('timeout', () => q.destroy()); q.on('error', () => done(null)); });
      (async () => { while (Date.now() - t0 < 90000 && !(first && Date.now() - first > 15000)) { const body = await ask();
        if (body === null) failed++; else if (body.startsWith(${JSON.stringify(MARKER)})) first ||= Date.now(); else if (first) app.push(Date.now() - first);
        await new Promise((r) => setTimeout(r, 100)); }
        process.stdout.write(JSON.stringify({ failed, first, app })); })();`;
    const polled = kubectl(bed.tb, ['-n', NS, 'exec', 'deploy/service-a', '--', 'node', '-e', poller]);
    const started = Date.now();
    let returned = 0;
    const intercepted = telepod('intercept', 'slow', '--port', '8000').finally(() => (returned = Date.now()));
    // The manager's relay slice puts it in the Service while the rollout runs.
    await waitUntil('the relay slice', 8000, async () => /telepod-relay-slow-ipv4/.test(await bridges()));
    assert.equal(returned, 0, 'the relay slice was seen before the intercept returned');
    const result = await intercepted;
    assert.equal(result.code, 0, result.stderr);
    assert.equal(await bridges(), '');
    const { failed, first, app } = JSON.parse(await polled) as {
      failed: number;
      first: number;
      app: number[];
    };
    assert.ok(first, 'an answer came from the workstation');
    // No new pod is ready before 8 s: an answer from here before that came through the relay.
    assert.ok(
      first - started < 8000,
      `the first answer came ${first - started} ms after the intercept started`,
    );
    assert.ok(
      first < returned,
      `the first answer from here came ${first - started} ms after the intercept started, before it returned (${returned - started} ms)`,
    );
    assert.equal(failed, 0, 'no request failed');
    // The relay slice and the Service's move reach kube-proxy as separate updates: until the
    // sync after both (about a second; 3 s allowed on a loaded machine), an old pod may still
    // take a new connection. After that none reaches the app: the new pods' agents hold the
    // intercept as they start.
    assert.deepEqual(
      app.filter((ms) => ms > 3000),
      [],
      `no request reached the app later than 3 s after the first reached the workstation (ms after it: ${app.join(', ')})`,
    );
    await untilFromCluster('http://slow/x', `${MARKER}:/x\n`);
    await telepodOk('leave', 'slow', '--restore');
    await waitUntil(
      'slow to answer from the app',
      60_000,
      async () => (await fromCluster('http://slow/')) === 'slow app\n',
    );
    assert.deepEqual(await Promise.all([snapshot('deploy', 'slow'), snapshot('svc', 'slow')]), original);
    assert.equal(await bridges(), '');
  } finally {
    await telepod('leave', 'slow', '--restore');
    await kubectl(bed.tb, ['-n', NS, 'delete', 'deploy/slow', 'svc/slow', '--wait=false']);
  }
});

test('intercept -- cmd lasts as long as the command', async () => {
  const result = await telepod(
    'intercept',
    'service-b',
    '--port',
    '8000',
    '--',
    'sh',
    '-c',
    // Asks service-a (through telepod) until its answer comes from here; at most 15 s.
    `for i in $(seq 30); do r=$(curl -s http://service-a:8000/); case $r in *${MARKER}*) echo "$r"; exit 7;; esac; sleep 0.5; done; exit 1`,
  );
  assert.equal(result.code, 7, result.stderr);
  assert.equal(result.stdout, `service-a got: ${MARKER}:/\n`);
  // The intercept ended with the command; its agent stays dormant until the session ends.
  await untilFromCluster('http://localhost:8000/', 'service-a got: Hello, world!\n');
  await telepodOk('quit');
  await assertRestored();
});

test('replace: the app container is gone while replaced; traffic comes here; leave restores', async () => {
  const result = await telepod('replace', 'service-b', '--port', '8000', '-o', 'json');
  assert.equal(result.code, 0, result.stderr);
  await untilFromCluster('http://localhost:8000/', `service-a got: ${MARKER}:/\n`);
  const containers = await kubectl(bed.tb, [
    '-n',
    NS,
    'get',
    'deploy',
    'service-b',
    '-o',
    'jsonpath={.spec.template.spec.containers[*].name}',
  ]);
  assert.equal(containers, 'telepod-agent');
  await telepodOk('leave', 'service-b', '--restore');
  await assertRestored();
});

test('run --swap-deployment --expose: a proxy takes the traffic, the original is scaled back on exit', async () => {
  // The command itself serves on 8001 and asks service-a (through telepod) until the answer
  // comes from here (at most 15 s), then three more times.
  const script =
    `const s = require('http').createServer((q, r) => r.end('swapped-${MARKER}\\n')).listen(8001, async () => {` +
    `const ask = async () => (await fetch('http://service-a:8000/')).text();` +
    `for (let i = 0; i < 30 && !(await ask()).includes('${MARKER}'); i++) await new Promise((r) => setTimeout(r, 500));` +
    `for (let i = 0; i < 3; i++) process.stdout.write(await ask());` +
    `s.close(); });`;
  const result = await telepod(
    'run',
    '--swap-deployment',
    'service-b',
    '--expose',
    '8001:8000',
    '--',
    process.execPath,
    '-e',
    script,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, `service-a got: swapped-${MARKER}\n`.repeat(3));
  assert.equal(
    (await kubectl(bed.tb, ['-n', NS, 'get', 'deploy', '-o', 'name'])).includes('telepod-swap'),
    false,
  );
  await telepod('connect');
  await assertRestored();
});

test('run --expose: the cluster reaches a local port through a proxy named after the session', async () => {
  const script =
    `const s = require('http').createServer((q, r) => r.end('exposed-${MARKER}\\n')).listen(8002, async () => {` +
    `const st = JSON.parse(require('child_process').execFileSync(process.execPath, [process.argv[1], '--kubeconfig', process.argv[2], 'status', '-o', 'json']));` +
    `const remote = st.intercepts[0].ports[0].remote.replace(':', '.${NS}:');` +
    // A new Service: kube-proxy programs it within a moment; ask for at most 15 s.
    `for (let i = 0; i < 30; i++) { try { process.stdout.write(await (await fetch('http://' + remote + '/')).text()); break; }` +
    ` catch { await new Promise((r) => setTimeout(r, 500)); } } s.close(); });`;
  const telepodPath = new URL('../../dist/telepod.mjs', import.meta.url).pathname;
  const result = await telepod(
    'run',
    '--expose',
    '8002',
    '--',
    process.execPath,
    '-e',
    script,
    telepodPath,
    bed.tb.workstation.kubeconfig,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, `exposed-${MARKER}\n`);
  const leftovers = await kubectl(bed.tb, [
    '-n',
    NS,
    'get',
    'deploy,svc,configmap',
    '-l',
    'app.kubernetes.io/managed-by=telepod',
    '-o',
    'name',
  ]);
  assert.equal(leftovers.trim(), '');
  await telepod('connect');
});

test("the intercepted container's environment reaches -- cmd and the env files (mode 0600), and never status", async (t) => {
  // Not connected: the one-shot connects itself, so its session (and envy's agent) ends with the
  // command and the workload is restored below (in a session that stays, the agent would stay dormant).
  await telepodOk('quit');
  const dir = await mkdtemp(join(tmpdir(), 'telepod-env-e2e-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const envFile = join(dir, 'envy.env');
  const envJson = join(dir, 'envy.json');
  const result = await telepod(
    'intercept',
    'envy',
    '--port',
    '8003:8000',
    '--env-file',
    envFile,
    '--env-json',
    envJson,
    '--',
    'sh',
    '-c',
    'printf "%s|%s|%s|%s|%s|%s" "$LITERAL" "$GREETING" "$PASSWORD" "$POD_NAMESPACE" "$CFG_EXTRA" "$POD_NAME"',
  );
  assert.equal(result.code, 0, result.stderr);
  const [literal, greeting, password, namespace, extra, podName] = result.stdout.split('|');
  assert.deepEqual(
    [literal, greeting, password, namespace, extra],
    ['plain', 'hello-from-configmap', SECRET, NS, 'from-envfrom'],
  );
  assert.match(podName!, /^envy-[a-z0-9]+-[a-z0-9]+$/);
  const json = JSON.parse(await readFile(envJson, 'utf8')) as Record<string, string>;
  assert.equal(json.PASSWORD, SECRET);
  assert.equal(json.CFG_GREETING, 'hello-from-configmap');
  assert.match(json.ENVY_SERVICE_HOST ?? '', /^10\.96\./); // the Service link variables
  assert.equal(json.PATH, undefined); // the image's own variables are not the pod's
  assert.match(await readFile(envFile, 'utf8'), new RegExp(`^PASSWORD=${SECRET}$`, 'm'));
  for (const file of [envFile, envJson]) assert.equal((await stat(file)).mode & 0o777, 0o600);
  const status = await telepod('status', '-o', 'json');
  assert.doesNotMatch(status.stdout + result.stderr, new RegExp(SECRET));
  assert.doesNotMatch(await readFile(daemonLog(), 'utf8'), new RegExp(SECRET));
  await waitUntil('envy to be restored', 60_000, async () => {
    const annotations = await kubectl(bed.tb, [
      '-n',
      NS,
      'get',
      'deploy',
      'envy',
      '-o',
      'jsonpath={.metadata.annotations}',
    ]);
    return !annotations.includes('telepod.io/undo');
  });
});
