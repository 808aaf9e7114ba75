// e2e on the testbed: `telepod intercept / replace / leave / list` and `run --swap-deployment /
// --expose` send service-a's real requests to a server in the workstation netns, and put every
// workload and Service back exactly as it was — on leave, on exit, and after a kill -9.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writeClaims } from '../kube/claims.ts';
import { loadKubeConfig } from '../kube/config.ts';
import { openPortForward } from '../kube/portforward.ts';
import { Tunnel } from '../daemon/tunnel.ts';
import { MANAGER_PATHS, MANAGER_PORT } from '../protocol/paths.ts';
import type { InterceptInfo, WorkloadInfo } from '../protocol/intercept.ts';
import { daemonLog, type DaemonStatus } from '../protocol/daemon-api.ts';
import {
  applyManifest,
  createNamespace,
  deploySeed,
  ensureTestbed,
  inWorkstation,
  kubectl,
  nodeServerManifest,
  ON_SIGTERM_EXIT,
  startInWorkstation,
  telepodInWorkstation,
  waitForRollout,
  waitUntil,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';

const NS = 'telepod-e2e-intercept';
const MARKER = `local-${process.pid}`;
let tb: TestbedStatus;
let deleteNamespace: () => Promise<void>;
let localServer: ChildProcess | undefined;

const telepod = (...args: string[]) => telepodInWorkstation(tb, '-n', NS, ...args);

/** Runs telepod and asserts it exited 0 (its stderr is the failure message). */
async function telepodOk(...args: string[]) {
  const result = await telepod(...args);
  assert.equal(result.code, 0, result.stderr);
  return result;
}

/** What service-a's pod gets from `url` (service-a itself calls service-b). */
async function fromCluster(url: string): Promise<string> {
  const script = `fetch(${JSON.stringify(url)}).then((r) => r.text()).then((t) => process.stdout.write(t), (e) => process.stdout.write('error: ' + e.cause?.code))`;
  return kubectl(tb, ['-n', NS, 'exec', 'deploy/service-a', '--', 'node', '-e', script]);
}

/**
 * Waits for service-a's pod to get `expected` from `url`. Right after a rollout, a connection
 * kept alive to a terminating pod or a kube-proxy rule a moment old can still serve one request
 * the old way; Kubernetes makes no stronger promise, so neither does telepod.
 */
async function untilFromCluster(url: string, expected: string): Promise<void> {
  await waitUntil(
    `${url} to answer ${JSON.stringify(expected)}`,
    15_000,
    async () => (await fromCluster(url)) === expected,
  );
}

async function snapshot(kind: string, name: string): Promise<unknown> {
  const object = JSON.parse(await kubectl(tb, ['-n', NS, 'get', kind, name, '-o', 'json'])) as {
    spec: unknown;
    metadata: { annotations?: Record<string, string> };
  };
  // The controller counts revisions up with every rollout; everything else must be as it was.
  const annotations = { ...object.metadata.annotations };
  delete annotations['deployment.kubernetes.io/revision'];
  return { spec: object.spec, annotations };
}

/** A server in the workstation netns answering every request with the marker. */
function startLocalServer(port: number): ChildProcess {
  const script = `require('http').createServer((q, s) => s.end('${MARKER}:' + q.url + '\\n')).listen(${port})`;
  return startInWorkstation(tb, script);
}

/** The names of telepod's bridge EndpointSlices in the namespace (none once an intercept is ready). */
async function bridges(): Promise<string> {
  const selector = 'endpointslice.kubernetes.io/managed-by=telepod.io';
  return (await kubectl(tb, ['-n', NS, 'get', 'endpointslices', '-l', selector, '-o', 'name'])).trim();
}

async function workloadsState(): Promise<unknown[]> {
  return Promise.all([
    snapshot('deploy', 'service-b'),
    snapshot('svc', 'service-b'),
    snapshot('deploy', 'numeric'),
    snapshot('svc', 'numeric'),
    bridges(),
  ]);
}
let original: unknown[];

before(async () => {
  tb = await ensureTestbed();
  await telepod('quit');
  deleteNamespace = await createNamespace(tb, NS);
  await deploySeed(tb, NS);
  // "numeric": a Service that targets container ports by number; the app serves 8000 and 9000.
  const labels = '{ app: numeric }';
  await applyManifest(
    tb,
    `apiVersion: apps/v1
kind: Deployment
metadata: { name: numeric, namespace: ${NS} }
spec:
  selector: { matchLabels: ${labels} }
  template:
    metadata: { labels: ${labels} }
    spec:
      containers:
        - name: app
          image: ${tb.images.node}
          imagePullPolicy: IfNotPresent
          command: [node, -e, "for (const p of [8000, 9000]) require('http').createServer((q, s) => s.end('numeric app ' + p + '\\\\n')).listen(p)"]
          readinessProbe: { tcpSocket: { port: 8000 }, periodSeconds: 1 }
---
apiVersion: v1
kind: Service
metadata: { name: numeric, namespace: ${NS} }
spec:
  selector: ${labels}
  ports: [{ name: web, port: 80, targetPort: 8000 }, { name: admin, port: 9000, targetPort: 9000 }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: lonely, namespace: ${NS} }
spec:
  selector: { matchLabels: { app: lonely } }
  template:
    metadata: { labels: { app: lonely } }
    spec:
      containers: [{ name: app, image: ${tb.images.node}, imagePullPolicy: IfNotPresent, command: [sleep, infinity] }]
---
apiVersion: v1
kind: Pod
metadata: { name: bare, namespace: ${NS} }
spec:
  containers: [{ name: app, image: ${tb.images.node}, imagePullPolicy: IfNotPresent, command: [sleep, infinity] }]
`,
  );
  await applyManifest(tb, envyManifest(tb));
  await waitForRollout(tb, NS, 'envy');
  await waitForRollout(tb, NS, 'numeric');
  await waitUntil(
    'numeric to answer',
    30_000,
    async () => (await fromCluster('http://numeric/')) === 'numeric app 8000\n',
  );
  original = await workloadsState();
  localServer = startLocalServer(8000);
  const connected = await telepod('connect');
  assert.equal(connected.code, 0, connected.stderr);
});

after(async () => {
  localServer?.kill();
  await telepod('quit');
  await deleteNamespace?.();
});

const SECRET = `s3cr3t-${process.pid}`;

/** "envy": env from a ConfigMap key, a Secret key, fieldRefs, envFrom with a prefix, a literal. */
function envyManifest(tb: TestbedStatus): string {
  return `apiVersion: v1
kind: ConfigMap
metadata: { name: envy-config, namespace: ${NS} }
data: { GREETING: hello-from-configmap, EXTRA: from-envfrom }
---
apiVersion: v1
kind: Secret
metadata: { name: envy-secret, namespace: ${NS} }
stringData: { PASSWORD: ${SECRET} }
---
${nodeServerManifest(
  tb,
  NS,
  'envy',
  `${ON_SIGTERM_EXIT}require('http').createServer((q, s) => s.end('envy')).listen(8000)`,
  {
    container: {
      env: [
        { name: 'LITERAL', value: 'plain' },
        { name: 'GREETING', valueFrom: { configMapKeyRef: { name: 'envy-config', key: 'GREETING' } } },
        { name: 'PASSWORD', valueFrom: { secretKeyRef: { name: 'envy-secret', key: 'PASSWORD' } } },
        { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      ],
      envFrom: [{ prefix: 'CFG_', configMapRef: { name: 'envy-config' } }],
    },
  },
)}`;
}

/** After leave/exit: service-a gets the cluster's answers again and every spec is the original. */
async function assertRestored(): Promise<void> {
  await waitUntil('service-a to get the cluster answer', 60_000, async () => {
    return (await fromCluster('http://localhost:8000/')) === 'service-a got: Hello, world!\n';
  });
  assert.deepEqual(await workloadsState(), original);
  assert.doesNotMatch(await kubectl(tb, ['-n', NS, 'get', 'configmap', '-o', 'name']), /telepod-agent/);
}

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
  assert.deepEqual(await snapshot('svc', 'service-b'), original[1]);
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
    await kubectl(tb, ['-n', NS, 'get', 'pods', '-l', `app=${deployment}`, '-o', 'json']),
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
  const targets = await kubectl(tb, [
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
  assert.deepEqual(await workloadsState(), original);
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
  const containers = await kubectl(tb, [
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
    (await kubectl(tb, ['-n', NS, 'get', 'deploy', '-o', 'name'])).includes('telepod-swap'),
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
    tb.workstation.kubeconfig,
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout, `exposed-${MARKER}\n`);
  const leftovers = await kubectl(tb, [
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
  assert.deepEqual(await workloadsState(), original);
});

// The agent's image is the installer's, so the failure comes from the workload itself: its pods
// take env from a ConfigMap that is deleted before the intercept, so the new pods cannot start.
test('a failing rollout restores the workload and shows the reason from the cluster', async () => {
  await applyManifest(
    tb,
    `apiVersion: v1
kind: ConfigMap
metadata: { name: fragile-config, namespace: ${NS} }
data: { A: a }
---
${nodeServerManifest(tb, NS, 'fragile', `${ON_SIGTERM_EXIT}for (const port of [8000, 8001]) require('http').createServer((q, s) => s.end('fragile')).listen(port)`, { container: { envFrom: [{ configMapRef: { name: 'fragile-config' } }] } })}
---
# A second Service by a number no container names: the intercept points it at the agent by a
# name of its own, with a bridge slice holding the old pod meanwhile.
apiVersion: v1
kind: Service
metadata: { name: fragile-n, namespace: ${NS} }
spec: { selector: { app: fragile }, ports: [{ port: 80, targetPort: 8001 }] }`,
  );
  await waitForRollout(tb, NS, 'fragile');
  await kubectl(tb, ['-n', NS, 'delete', 'configmap', 'fragile-config']);
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

test('a second session cannot take an intercepted port, and is told who holds it', async () => {
  await telepodOk('intercept', 'service-b', '--port', '8000');
  const { kc } = loadKubeConfig({ kubeconfig: tb.kubeconfig });
  const pod = (
    await kubectl(tb, [
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
      /holds no claim to patch deployments telepod-e2e-intercept\/service-b/,
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
    const annotations = await kubectl(tb, [
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
  assert.equal((await inWorkstation(tb, 'nft', ['list', 'table', 'ip', 'telepod'])).code, 1);
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
    const annotations = await kubectl(tb, [
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
