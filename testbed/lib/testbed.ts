// Helpers for e2e tests on the testbed: bring it up (or reuse it), run commands in the
// workstation netns (or the second one, through secondWorkstation), drive kubectl, and deploy
// the seed's sample services.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { z } from 'zod';

const run = promisify(execFile);
const TESTBED_SCRIPT = fileURLToPath(new URL('../testbed.sh', import.meta.url));
const KUBE_DNS = '10.96.0.10';

const workstationSchema = z.object({ netns: z.string(), kubeconfig: z.string() });
const statusSchema = z.object({
  ready: z.boolean(),
  kubernetesVersion: z.string(),
  kubeconfig: z.string(),
  kubectl: z.string(),
  /** The netns (and its kubeconfig) every workstation helper below runs in. */
  workstation: workstationSchema,
  /** A second workstation, isolated the same way: see secondWorkstation. */
  workstation2: workstationSchema,
  images: z.object({ node: z.string() }),
});
export type TestbedStatus = z.infer<typeof statusSchema>;

/**
 * The testbed as seen from the second workstation netns: a copy whose `workstation` is
 * `workstation2`, so inWorkstation, startInWorkstation, telepodWithEnv… run there. A second
 * telepod daemon there needs its own TELEPOD_RUN_DIR (telepodWithEnv).
 */
export function secondWorkstation(tb: TestbedStatus): TestbedStatus {
  return { ...tb, workstation: tb.workstation2 };
}

/**
 * Stops and starts the API server (clients' long-lived streams through it all drop), then waits
 * until the cluster sees new Services again. Right after a start, the API server refuses
 * kube-proxy's and CoreDNS's watches as forbidden until its RBAC caches are warm; their
 * informers then back off for up to 30 s, and a Service created meanwhile stays unreachable.
 */
export async function restartApiServer(): Promise<void> {
  await run('bash', [TESTBED_SCRIPT, 'restart-apiserver']);
  const tb = await testbedStatus();
  const name = `restart-probe-${Date.now()}`;
  await applyManifest(
    tb,
    `apiVersion: v1
kind: Service
metadata: { name: ${name}, namespace: default }
spec: { ports: [{ port: 80 }] }
`,
  );
  const clusterIP = (
    await kubectl(tb, ['-n', 'default', 'get', 'service', name, '-o', 'jsonpath={.spec.clusterIP}'])
  ).trim();
  // From the node netns: kube-dns answers the new name, and kube-proxy has a rule for its IP.
  const resolve = `const r = new (require('dns').promises.Resolver)(); r.setServers(['${KUBE_DNS}']);
    r.resolve4('${name}.default.svc.cluster.local').then((a) => process.stdout.write(a.join()), () => {})`;
  const node = ['--net=/run/netns/tpbed-node', '--'];
  try {
    await waitUntil('kube-dns and kube-proxy to see a new Service after the restart', 180_000, async () => {
      const dns = await capture('nsenter', [...node, process.execPath, '-e', resolve]);
      const rules = await capture('nsenter', [...node, 'iptables-save']);
      return dns.stdout === clusterIP && rules.stdout.includes(clusterIP);
    });
  } finally {
    await kubectl(tb, ['-n', 'default', 'delete', 'service', name, '--wait=false']);
  }
}

export async function testbedStatus(): Promise<TestbedStatus> {
  const { stdout } = await run('bash', [TESTBED_SCRIPT, 'status', '--json']);
  return statusSchema.parse(JSON.parse(stdout));
}

/** Brings the testbed up (a healthy one is reused in seconds) and returns its status. */
export async function ensureTestbed(): Promise<TestbedStatus> {
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn('bash', [TESTBED_SCRIPT, 'up'], { stdio: ['ignore', 'inherit', 'inherit'] });
    child.on('error', reject).on('exit', resolve);
  });
  if (code !== 0) throw new Error(`testbed up failed with exit code ${code}`);
  const status = await testbedStatus();
  if (!status.ready) throw new Error('testbed up returned but the testbed is not ready');
  return status;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

async function capture(file: string, args: readonly string[], input?: string): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    // A command that exits before reading its input must not fail the caller with EPIPE.
    child.stdin?.on('error', () => undefined).end(input);
  });
}

/**
 * Runs a command in the workstation netns. nsenter --net keeps the shared mount namespace, so
 * mounts made by telepod's daemon are visible to every workstation process (`ip netns exec`
 * would give each command a private one).
 */
export function inWorkstation(tb: TestbedStatus, command: string, args: readonly string[] = []) {
  return capture('nsenter', [`--net=/run/netns/${tb.workstation.netns}`, '--', command, ...args]);
}

const TELEPOD = fileURLToPath(new URL('../../dist/telepod.mjs', import.meta.url));

/** `node -e <script>` in the workstation netns (a server there: the target of intercepts). */
export function startInWorkstation(tb: TestbedStatus, script: string): ChildProcess {
  return spawn(
    'nsenter',
    [`--net=/run/netns/${tb.workstation.netns}`, '--', process.execPath, '-e', script],
    {
      stdio: ['ignore', 'ignore', 'inherit'], // its failure (a port in use) shows in the test's output
    },
  );
}

/** The built `telepod` (run `npm run build` first) in the workstation netns, with its kubeconfig. */
export function telepodInWorkstation(tb: TestbedStatus, ...args: string[]) {
  return telepodWithEnv(tb, {}, ...args);
}

/** Like telepodInWorkstation, with some environment variables set (for it and its daemon). */
export function telepodWithEnv(tb: TestbedStatus, env: Record<string, string>, ...args: string[]) {
  const assignments = Object.entries(env).map(([name, value]) => `${name}=${value}`);
  // `--` keeps node from taking telepod's `--env-file` as its own option.
  return inWorkstation(tb, 'env', [
    ...assignments,
    process.execPath,
    '--',
    TELEPOD,
    '--kubeconfig',
    tb.workstation.kubeconfig,
    ...args,
  ]);
}

/** kubectl against the testbed from the host side; throws with stderr on failure. */
export async function kubectl(tb: TestbedStatus, args: readonly string[], input?: string): Promise<string> {
  const result = await capture(tb.kubectl, ['--kubeconfig', tb.kubeconfig, ...args], input);
  if (result.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${result.stderr.trim()}`);
  return result.stdout;
}

export async function applyManifest(tb: TestbedStatus, yaml: string): Promise<void> {
  await kubectl(tb, ['apply', '-f', '-'], yaml);
}

export async function waitForRollout(
  tb: TestbedStatus,
  namespace: string,
  deployment: string,
): Promise<void> {
  await kubectl(tb, ['-n', namespace, 'rollout', 'status', `deploy/${deployment}`, '--timeout=120s']);
}

/** A fresh namespace for one test file; deleted (without waiting) by the returned function. */
export async function createNamespace(tb: TestbedStatus, name: string): Promise<() => Promise<void>> {
  await kubectl(tb, ['delete', 'namespace', name, '--ignore-not-found', '--timeout=120s']);
  await kubectl(tb, ['create', 'namespace', name]);
  return async () => {
    await kubectl(tb, ['delete', 'namespace', name, '--wait=false']);
  };
}

/** Extra fields for the app container and the pod spec of a nodeServerManifest. */
export interface NodeServerExtras {
  container?: Record<string, unknown>;
  pod?: Record<string, unknown>;
}

/**
 * A Deployment whose one container (named like it) runs `script` with node and serves port
 * 8000 (named `http`), and a Service of the same name on port 8000 targeting that name.
 */
export function nodeServerManifest(
  tb: TestbedStatus,
  namespace: string,
  name: string,
  script: string,
  extras: NodeServerExtras = {},
): string {
  const labels = { app: name };
  const container = {
    name,
    image: tb.images.node,
    imagePullPolicy: 'IfNotPresent',
    command: ['node', '-e', script],
    ports: [{ name: 'http', containerPort: 8000 }],
    readinessProbe: { tcpSocket: { port: 8000 }, periodSeconds: 1 },
    ...extras.container,
  };
  const deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace, labels },
    spec: {
      selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: { ...extras.pod, containers: [container] } },
    },
  };
  const service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { selector: labels, ports: [{ name: 'http', port: 8000, targetPort: 'http' }] },
  };
  return `${stringify(deployment)}---\n${stringify(service)}`;
}

/** Like most apps, the test servers stop on SIGTERM (node as PID 1 would ignore it for 30 s). */
export const ON_SIGTERM_EXIT = `process.on('SIGTERM', () => process.exit(0));`;

/** The seed's sample pair: service-b answers `Hello, world!`; service-a calls service-b. */
export async function deploySeed(tb: TestbedStatus, namespace: string): Promise<void> {
  const serviceB = `${ON_SIGTERM_EXIT}require('http').createServer((q, s) => s.end('Hello, world!\\n')).listen(8000)`;
  const serviceA =
    `${ON_SIGTERM_EXIT}require('http').createServer((q, s) => fetch('http://service-b:8000/').then((r) => r.text())` +
    `.then((t) => s.end('service-a got: ' + t), (e) => { s.statusCode = 502; s.end(String(e)); })).listen(8000)`;
  await applyManifest(
    tb,
    `${nodeServerManifest(tb, namespace, 'service-b', serviceB)}---\n${nodeServerManifest(tb, namespace, 'service-a', serviceA)}`,
  );
  await waitForRollout(tb, namespace, 'service-b');
  await waitForRollout(tb, namespace, 'service-a');
  // Rollouts end when the pods are ready; kube-proxy programs the Services a moment later.
  await waitUntil('service-a to reach service-b', 30_000, async () => {
    const answer = await kubectl(tb, ['-n', namespace, 'exec', 'deploy/service-a', '--', ...SEED_PROBE]);
    return answer === 'service-a got: Hello, world!\n';
  });
}

/** The command that asks service-a (from inside its pod) to call service-b. */
export const SEED_PROBE = [
  'node',
  '-e',
  "fetch('http://localhost:8000/').then((r) => r.text()).then((t) => process.stdout.write(t))",
] as const;

export async function waitUntil(
  what: string,
  timeoutMs: number,
  probe: () => Promise<boolean>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      if (await probe()) return;
    } catch (err) {
      lastError = err;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`, { cause: lastError });
}
