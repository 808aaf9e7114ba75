// Test fixture for the intercept e2e tests (intercept.e2e.ts, intercept-failures.e2e.ts): a
// namespace of their own with the seed (service-a calls service-b), "numeric" (a Service that
// targets container ports by number), "lonely" (no Service selects it), a bare Pod and "envy"
// (env from every kind of source); a server in the workstation netns answering with a marker;
// and the helpers the tests look at the cluster with. `interceptBed(namespace)` makes one; its
// `setUp` and `tearDown` go in the test file's before and after.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import {
  applyManifest,
  createNamespace,
  deploySeed,
  ensureTestbed,
  kubectl,
  nodeServerManifest,
  ON_SIGTERM_EXIT,
  startInWorkstation,
  telepodInWorkstation,
  waitForRollout,
  waitUntil,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';

/** What the local server answers with (`<marker>:<path>`). */
export const MARKER = `local-${process.pid}`;
/** envy's Secret value, which must reach the command and never status or the daemon's log. */
export const SECRET = `s3cr3t-${process.pid}`;

/** "envy": env from a ConfigMap key, a Secret key, fieldRefs, envFrom with a prefix, a literal. */
function envyManifest(tb: TestbedStatus, NS: string): string {
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

/**
 * A Deployment `name` whose container runs `script` in Node and is ready once port 8000 accepts
 * (not before `readyAfterSeconds`), and a Service `name` with `ports` (a YAML flow list).
 */
export function nodeAppManifest(
  tb: TestbedStatus,
  NS: string,
  name: string,
  script: string,
  ports: string,
  readyAfterSeconds = 0,
): string {
  const labels = `{ app: ${name} }`;
  const delay = readyAfterSeconds ? `initialDelaySeconds: ${readyAfterSeconds}, ` : '';
  return `apiVersion: apps/v1
kind: Deployment
metadata: { name: ${name}, namespace: ${NS} }
spec:
  selector: { matchLabels: ${labels} }
  template:
    metadata: { labels: ${labels} }
    spec:
      containers:
        - name: app
          image: ${tb.images.node}
          imagePullPolicy: IfNotPresent
          command: [node, -e, ${JSON.stringify(script)}]
          readinessProbe: { tcpSocket: { port: 8000 }, ${delay}periodSeconds: 1 }
---
apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: ${NS} }
spec:
  selector: ${labels}
  ports: ${ports}
`;
}

/** "numeric" (the app serves 8000 and 9000), "lonely" and the bare Pod. */
function othersManifest(tb: TestbedStatus, NS: string): string {
  const numeric = nodeAppManifest(
    tb,
    NS,
    'numeric',
    "for (const p of [8000, 9000]) require('http').createServer((q, s) => s.end('numeric app ' + p + '\\n')).listen(p)",
    '[{ name: web, port: 80, targetPort: 8000 }, { name: admin, port: 9000, targetPort: 9000 }]',
  );
  return `${numeric}---
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
`;
}

/** The intercept tests' namespace `NS` on the testbed, and what they check it with. */
export function interceptBed(NS: string) {
  let testbed: TestbedStatus | undefined;
  let deleteNamespace: (() => Promise<void>) | undefined;
  let localServer: ChildProcess | undefined;
  let original: unknown[] = [];
  const tb = () => {
    if (!testbed) throw new Error('the intercept bed is not set up');
    return testbed;
  };

  const telepod = (...args: string[]) => telepodInWorkstation(tb(), '-n', NS, ...args);

  /** Runs telepod and asserts it exited 0 (its stderr is the failure message). */
  async function telepodOk(...args: string[]) {
    const result = await telepod(...args);
    assert.equal(result.code, 0, result.stderr);
    return result;
  }

  /** What a Node `script` run in service-a's pod writes to its stdout. */
  function inServiceA(script: string): Promise<string> {
    return kubectl(tb(), ['-n', NS, 'exec', 'deploy/service-a', '--', 'node', '-e', script]);
  }

  /** What service-a's pod gets from `url` (service-a itself calls service-b). */
  async function fromCluster(url: string): Promise<string> {
    return inServiceA(
      `fetch(${JSON.stringify(url)}).then((r) => r.text()).then((t) => process.stdout.write(t), (e) => process.stdout.write('error: ' + e.cause?.code))`,
    );
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

  /** An object's spec and annotations, but for the revision a rollout counts up. */
  async function snapshot(kind: string, name: string): Promise<unknown> {
    const object = JSON.parse(await kubectl(tb(), ['-n', NS, 'get', kind, name, '-o', 'json'])) as {
      spec: unknown;
      metadata: { annotations?: Record<string, string> };
    };
    // The controller counts revisions up with every rollout; everything else must be as it was.
    const annotations = { ...object.metadata.annotations };
    delete annotations['deployment.kubernetes.io/revision'];
    return { spec: object.spec, annotations };
  }

  /** The names of telepod's bridge EndpointSlices in the namespace (none once an intercept is ready). */
  async function bridges(): Promise<string> {
    const selector = 'endpointslice.kubernetes.io/managed-by=telepod.io';
    return (await kubectl(tb(), ['-n', NS, 'get', 'endpointslices', '-l', selector, '-o', 'name'])).trim();
  }

  /** What the tests check is put back: service-b's and numeric's Deployments and Services, and no bridge slice. */
  async function workloadsState(): Promise<unknown[]> {
    return Promise.all([
      snapshot('deploy', 'service-b'),
      snapshot('svc', 'service-b'),
      snapshot('deploy', 'numeric'),
      snapshot('svc', 'numeric'),
      bridges(),
    ]);
  }

  /** After leave/exit: service-a gets the cluster's answers again and every spec is the original. */
  async function assertRestored(): Promise<void> {
    await waitUntil('service-a to get the cluster answer', 60_000, async () => {
      return (await fromCluster('http://localhost:8000/')) === 'service-a got: Hello, world!\n';
    });
    assert.deepEqual(await workloadsState(), original);
    assert.doesNotMatch(await kubectl(tb(), ['-n', NS, 'get', 'configmap', '-o', 'name']), /telepod-agent/);
  }

  /** The namespace and its workloads, their state as it was, the local server on 8000, connected. */
  async function setUp(): Promise<void> {
    testbed = await ensureTestbed();
    await telepod('quit');
    deleteNamespace = await createNamespace(tb(), NS);
    await deploySeed(tb(), NS);
    await applyManifest(tb(), othersManifest(tb(), NS));
    await applyManifest(tb(), envyManifest(tb(), NS));
    await waitForRollout(tb(), NS, 'envy');
    await waitForRollout(tb(), NS, 'numeric');
    await waitUntil(
      'numeric to answer',
      30_000,
      async () => (await fromCluster('http://numeric/')) === 'numeric app 8000\n',
    );
    original = await workloadsState();
    const script = `require('http').createServer((q, s) => s.end('${MARKER}:' + q.url + '\\n')).listen(8000)`;
    localServer = startInWorkstation(tb(), script);
    await telepodOk('connect');
  }

  /** Stops the local server and the daemon, and deletes the namespace. */
  async function tearDown(): Promise<void> {
    localServer?.kill();
    if (testbed) await telepod('quit');
    await deleteNamespace?.();
  }

  return {
    NS,
    /** The testbed, once set up. */
    get tb() {
      return tb();
    },
    /** Every workload's and Service's state as set up (workloadsState). */
    get original() {
      return original;
    },
    telepod,
    telepodOk,
    inServiceA,
    fromCluster,
    untilFromCluster,
    snapshot,
    bridges,
    workloadsState,
    assertRestored,
    setUp,
    tearDown,
  };
}
