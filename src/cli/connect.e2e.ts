// e2e on the testbed: `telepod connect/status/quit/run` from the workstation netns make cluster
// Services, pod IPs and DNS names reachable for any program, and undo everything afterwards.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import type { DaemonStatus, PodConnectionCounts } from '../protocol/daemon-api.ts';
import {
  applyManifest,
  createNamespace,
  deploySeed,
  ensureTestbed,
  inWorkstation,
  kubectl,
  nodeServerManifest,
  ON_SIGTERM_EXIT,
  restartApiServer,
  telepodInWorkstation,
  waitForRollout,
  waitUntil,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';

const run = promisify(execFile);
const NS = 'telepod-e2e-connect';
const TELEPOD = fileURLToPath(new URL('../../dist/telepod.mjs', import.meta.url));
let tb: TestbedStatus;
let deleteNamespace: () => Promise<void>;
let clusterIP: string;
let podIP: string;

const telepod = (...args: string[]) => telepodInWorkstation(tb, '-n', NS, ...args);
const curl = (url: string, ...extra: string[]) =>
  inWorkstation(tb, 'curl', ['-s', '--max-time', '5', ...extra, url]);

before(async () => {
  tb = await ensureTestbed();
  await telepod('quit');
  deleteNamespace = await createNamespace(tb, NS);
  await deploySeed(tb, NS);
  await applyManifest(
    tb,
    `apiVersion: v1
kind: Service
metadata: { name: service-b-headless, namespace: ${NS} }
spec: { clusterIP: None, selector: { app: service-b }, ports: [{ port: 8000 }] }
`,
  );
  // A server on its pod IP only: a port-forward (the kubelet dials the pod's loopback) is refused.
  const podIpOnly = `${ON_SIGTERM_EXIT}require('http').createServer((q, s) => s.end('on my pod IP\\n')).listen(8000, process.env.POD_IP)`;
  await applyManifest(
    tb,
    nodeServerManifest(tb, NS, 'pod-ip-only', podIpOnly, {
      container: { env: [{ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }] },
    }),
  );
  await waitForRollout(tb, NS, 'pod-ip-only');
  clusterIP = (
    await kubectl(tb, ['-n', NS, 'get', 'svc', 'service-b', '-o', 'jsonpath={.spec.clusterIP}'])
  ).trim();
  podIP = (
    await kubectl(tb, [
      '-n',
      NS,
      'get',
      'pod',
      '-l',
      'app=service-b',
      '-o',
      'jsonpath={.items[0].status.podIP}',
    ])
  ).trim();
});
after(async () => {
  await telepod('quit');
  await deleteNamespace?.();
});

test('before connecting, the workstation reaches no cluster address', async () => {
  assert.notEqual((await curl(`http://${clusterIP}:8000/`)).code, 0);
  assert.notEqual((await curl('http://service-b:8000/')).code, 0);
  assert.equal((await telepod('status')).stdout.trim(), 'not connected');
});

test('bad input exits 2 with a clear message and starts nothing', async () => {
  const result = await telepod('connect', '--also-proxy', 'not-a-cidr');
  assert.equal(result.code, 2);
  assert.match(result.stderr, /"not-a-cidr" is not an IPv4 CIDR/);
  assert.equal((await telepod('status')).stdout.trim(), 'not connected');
});

test('connect returns with a one-line summary of context, namespace and subnets', async () => {
  const result = await telepod('connect');
  assert.equal(result.code, 0, result.stderr);
  assert.match(
    result.stdout,
    new RegExp(`^connected to context \\S+, namespace ${NS}; routing .*10\\.96\\.0\\.0/16`),
  );
});

test('service-b answers by short name, name.namespace, FQDN, ClusterIP and pod IP', async () => {
  for (const url of [
    'http://service-b:8000/',
    `http://service-b.${NS}:8000/`,
    `http://service-b.${NS}.svc.cluster.local:8000/`,
    `http://${clusterIP}:8000/`,
    `http://${podIP}:8000/`,
  ]) {
    const result = await curl(url);
    assert.equal(result.stdout, 'Hello, world!\n', `${url}: ${result.stderr}`);
  }
});

async function podConnections(): Promise<PodConnectionCounts> {
  const status = JSON.parse((await telepod('status', '-o', 'json')).stdout) as DaemonStatus;
  return status.podConnections!;
}

test('a Service by name goes straight to its pod over a port-forward; one that serves only its pod IP through the manager', async () => {
  const before = await podConnections();
  await waitUntil('a connection by name to go straight to the pod', 30_000, async () => {
    const result = await curl('http://service-b:8000/');
    assert.equal(result.stdout, 'Hello, world!\n', result.stderr);
    return (await podConnections()).direct > before.direct;
  });
  // Its port-forward is refused on the pod's loopback, so the manager carries the connection,
  // with what the client had sent: every request is answered, none is lost on the way.
  await waitUntil('a connection to pod-ip-only to be handed to the manager', 30_000, async () => {
    const result = await curl('http://pod-ip-only:8000/');
    assert.equal(result.stdout, 'on my pod IP\n', result.stderr);
    return (await podConnections()).fallbacks > before.fallbacks;
  });
});

test("the direct path follows a rollout as it happens: the Service's slices are watched, and a terminating pod gets no new connection", async () => {
  // Each pod answers its name, and serves on for a minute once terminating (preStop), where
  // kube-proxy would no longer send it new connections.
  const script = `${ON_SIGTERM_EXIT}require('http').createServer((q, s) => s.end(require('os').hostname())).listen(8000)`;
  await applyManifest(
    tb,
    nodeServerManifest(tb, NS, 'rolling', script, {
      container: { lifecycle: { preStop: { sleep: { seconds: 60 } } } },
      pod: { terminationGracePeriodSeconds: 90 },
    }),
  );
  await waitForRollout(tb, NS, 'rolling');
  const podNames = async () =>
    JSON.parse(await kubectl(tb, ['-n', NS, 'get', 'pods', '-l', 'app=rolling', '-o', 'json'])) as {
      items: { metadata: { name: string; deletionTimestamp?: string } }[];
    };
  const [oldPod] = (await podNames()).items.map((p) => p.metadata.name);
  const answer = async () => (await curl('http://rolling:8000/')).stdout;
  const before = await podConnections();
  await waitUntil('a connection to rolling to go straight to its pod', 30_000, async () => {
    assert.equal(await answer(), oldPod);
    return (await podConnections()).direct > before.direct;
  });
  const watching = await podConnections();
  assert.ok(watching.watchedServices > before.watchedServices, 'its slices are watched');

  await kubectl(tb, ['-n', NS, 'rollout', 'restart', 'deployment/rolling']);
  await waitForRollout(tb, NS, 'rolling'); // the old pod is terminating from here on
  const newPod = (await podNames()).items.find((p) => !p.metadata.deletionTimestamp)!.metadata.name;
  assert.notEqual(newPod, oldPod);
  // The old pod still answers (in its preStop), but it is terminating: new connections leave it
  // once the watch has told the daemon (a read of three API calls later). Re-read only every
  // 3 s, as before the watch, connections kept reaching it for up to 3 s after the rollout.
  let inARow = 0;
  let toOldPod = 0;
  await waitUntil('five connections by name in a row to reach the new pod', 30_000, async () => {
    const pod = await answer();
    if (pod === oldPod) toOldPod++;
    inARow = pod === newPod ? inARow + 1 : 0;
    return inARow >= 5;
  });
  assert.ok(toOldPod <= 3, `${toOldPod} connections reached the terminating pod after the rollout`);
  for (let i = 0; i < 10; i++) assert.equal(await answer(), newPod, `connection ${i}`);
  const terminating = (await podNames()).items.find((p) => p.metadata.name === oldPod);
  assert.ok(terminating?.metadata.deletionTimestamp, 'the old pod is still there, terminating');
  const afterRollout = await podConnections();
  assert.ok(afterRollout.endpointChanges > watching.endpointChanges, 'the watch saw the rollout');
  assert.equal(afterRollout.fallbacks, watching.fallbacks, 'no connection failed over to the manager');
  // The old pod need not wait out its minute.
  await kubectl(tb, ['-n', NS, 'delete', 'pod', oldPod!, '--grace-period=1', '--wait=false']);
});

test('Services of other namespaces and headless Services resolve', async () => {
  const api = await curl('https://kubernetes.default.svc:443/healthz', '-k');
  assert.equal(api.stdout, 'ok');
  const headless = await inWorkstation(tb, 'getent', ['ahostsv4', 'service-b-headless']);
  assert.equal(headless.code, 0);
  assert.equal(headless.stdout.split(/\s+/)[0], podIP);
});

test('Node and Python programs reach service-b unchanged', async () => {
  const node = await inWorkstation(tb, process.execPath, [
    '-e',
    "fetch('http://service-b:8000/').then((r) => r.text()).then((t) => process.stdout.write(t))",
  ]);
  assert.equal(node.stdout, 'Hello, world!\n', node.stderr);
  const python = await inWorkstation(tb, 'python3', [
    '-c',
    "import urllib.request; print(urllib.request.urlopen('http://service-b:8000/').read().decode(), end='')",
  ]);
  assert.equal(python.stdout, 'Hello, world!\n', python.stderr);
});

test('a static Go binary (own resolver, no libc) reaches service-b', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'telepod-go-'));
  await writeFile(
    join(dir, 'main.go'),
    `package main

import ("fmt"; "io"; "net/http"; "os")

func main() {
	r, err := http.Get("http://service-b:8000/")
	if err != nil { fmt.Fprintln(os.Stderr, err); os.Exit(1) }
	b, _ := io.ReadAll(r.Body)
	fmt.Print(string(b))
}
`,
  );
  await run('go', ['mod', 'init', 'probe'], { cwd: dir });
  await run('go', ['build', '-o', 'probe', '.'], {
    cwd: dir,
    env: { ...process.env, CGO_ENABLED: '0', GOTOOLCHAIN: 'local' },
  });
  const result = await inWorkstation(tb, join(dir, 'probe'));
  await rm(dir, { recursive: true, force: true });
  assert.equal(result.stdout, 'Hello, world!\n', result.stderr);
});

test('non-cluster names are not answered by the cluster', async () => {
  const result = await inWorkstation(tb, 'getent', ['hosts', 'example.com']);
  assert.notEqual(result.code, 0, result.stdout);
});

test('status -o json reports the session', async () => {
  const status = JSON.parse((await telepod('status', '-o', 'json')).stdout) as Record<string, unknown>;
  assert.equal(status.connected, true);
  assert.equal(status.namespace, NS);
  assert.equal(status.managerVersion, '0.1.0');
  assert.ok((status.subnets as string[]).includes('10.96.0.0/16'));
  assert.equal(typeof status.daemonPid, 'number');
});

test('quit undoes the nft table and routes, and the cluster is unreachable again', async () => {
  const result = await telepod('quit');
  assert.equal(result.code, 0);
  assert.equal(result.stdout.trim(), 'disconnected');
  assert.doesNotMatch((await inWorkstation(tb, 'nft', ['list', 'tables'])).stdout, /telepod/);
  assert.doesNotMatch((await inWorkstation(tb, 'ip', ['route'])).stdout, /telepod0/);
  assert.notEqual((await curl(`http://${clusterIP}:8000/`)).code, 0);
});

test('run connects for one command, returns its exit code, and disconnects', async () => {
  const ok = await telepod('run', '--', 'curl', '-s', '--max-time', '5', 'http://service-b:8000/');
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, 'Hello, world!\n');
  const failing = await telepod('run', '--', 'sh', '-c', 'exit 7');
  assert.equal(failing.code, 7);
  assert.equal((await telepod('status')).stdout.trim(), 'not connected');
});

test('--never-proxy keeps a subnet off the tunnel, --also-proxy adds one', async () => {
  const result = await telepod('connect', '--never-proxy', '10.244.0.0/16', '--also-proxy', '10.91.0.0/30');
  assert.equal(result.code, 0, result.stderr);
  const status = JSON.parse((await telepod('status', '-o', 'json')).stdout) as { subnets: string[] };
  assert.ok(!status.subnets.includes('10.244.0.0/16'), status.subnets.join());
  assert.ok(status.subnets.includes('10.91.0.0/30'), status.subnets.join());
  assert.equal((await curl(`http://${clusterIP}:8000/`)).stdout, 'Hello, world!\n');
  assert.notEqual((await curl(`http://${podIP}:8000/`)).code, 0);
  assert.equal((await telepod('quit')).code, 0);
});

test('a daemon killed with -9 leaves rules that the next status removes', async () => {
  const first = await telepod('connect');
  assert.equal(first.code, 0, first.stderr);
  const status = JSON.parse((await telepod('status', '-o', 'json')).stdout) as { daemonPid: number };
  process.kill(status.daemonPid, 'SIGKILL');
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.match((await inWorkstation(tb, 'nft', ['list', 'tables'])).stdout, /telepod/);
  const after = await telepod('status');
  assert.equal(after.stdout.trim(), 'not connected');
  assert.match(after.stderr, /removed the rules a crashed daemon had left behind/);
  assert.doesNotMatch((await inWorkstation(tb, 'nft', ['list', 'tables'])).stdout, /telepod/);
  assert.doesNotMatch((await inWorkstation(tb, 'ip', ['route'])).stdout, /telepod0/);
});

test('SIGTERM to the daemon undoes everything', async () => {
  assert.equal((await telepod('connect')).code, 0);
  const status = JSON.parse((await telepod('status', '-o', 'json')).stdout) as { daemonPid: number };
  process.kill(status.daemonPid, 'SIGTERM');
  await waitUntil('the daemon to exit', 15_000, () => Promise.resolve(!processAlive(status.daemonPid)));
  assert.doesNotMatch((await inWorkstation(tb, 'nft', ['list', 'tables'])).stdout, /telepod/);
  assert.equal((await telepod('status')).stdout.trim(), 'not connected');
});

test('Ctrl-C during connect leaves nothing behind', async () => {
  const child = spawn(
    'nsenter',
    [
      `--net=/run/netns/${tb.workstation.netns}`,
      '--',
      process.execPath,
      TELEPOD,
      '--kubeconfig',
      tb.workstation.kubeconfig,
      '-n',
      NS,
      'connect',
    ],
    { stdio: 'ignore' },
  );
  await new Promise((resolve) => setTimeout(resolve, 400));
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.notEqual(code, 0);
  await waitUntil(
    'no daemon',
    15_000,
    async () => (await telepod('status')).stdout.trim() === 'not connected',
  );
  assert.doesNotMatch((await inWorkstation(tb, 'nft', ['list', 'tables'])).stdout, /telepod/);
});

test('unknown context or namespace: clear message, exit 2, nothing changed', async () => {
  const context = await telepod('--context', 'nope', 'connect');
  assert.equal(context.code, 2);
  assert.match(context.stderr, /context "nope" is not in the kubeconfig/);
  const namespace = await telepodInWorkstation(tb, '-n', 'no-such-namespace', 'connect');
  assert.equal(namespace.code, 2, namespace.stderr);
  assert.match(namespace.stderr, /namespace "no-such-namespace" not found/);
  assert.doesNotMatch((await inWorkstation(tb, 'nft', ['list', 'tables'])).stdout, /telepod/);
  await telepod('quit');
});

test('an unreachable API server or missing rights: clear message, non-zero exit, nothing changed', async () => {
  const wsConfig = await readFile(tb.workstation.kubeconfig, 'utf8');
  const dir = await mkdtemp(join(tmpdir(), 'telepod-kc-'));
  const unreachable = join(dir, 'unreachable.conf');
  await writeFile(unreachable, wsConfig.replace(/server: \S+/, 'server: https://127.0.0.1:1'));
  const down = await telepodInWorkstation(tb, '--kubeconfig', unreachable, '-n', NS, 'connect');
  assert.equal(down.code, 1, down.stderr);
  assert.match(down.stderr, /cannot reach the API server https:\/\/127\.0\.0\.1:1/);

  await kubectl(tb, ['-n', NS, 'create', 'serviceaccount', 'nobody']);
  const token = (await kubectl(tb, ['-n', NS, 'create', 'token', 'nobody'])).trim();
  const ca = /certificate-authority-data: (\S+)/.exec(wsConfig)![1]!;
  const server = /server: (\S+)/.exec(wsConfig)![1]!;
  const nobody = join(dir, 'nobody.conf');
  await writeFile(
    nobody,
    `apiVersion: v1
kind: Config
clusters: [{ name: tb, cluster: { server: "${server}", certificate-authority-data: ${ca} } }]
users: [{ name: nobody, user: { token: "${token}" } }]
contexts: [{ name: nobody, context: { cluster: tb, user: nobody } }]
current-context: nobody
`,
  );
  const forbidden = await telepodInWorkstation(tb, '--kubeconfig', nobody, '-n', NS, 'connect');
  assert.equal(forbidden.code, 1, forbidden.stderr);
  assert.match(forbidden.stderr, /not allowed: .*cannot get resource "namespaces"/);

  // Allowed to read (the built-in `view` role) but not to install the manager.
  await kubectl(tb, ['delete', 'clusterrolebinding', 'telepod-e2e-nobody-view', '--ignore-not-found']);
  await kubectl(tb, [
    'create',
    'clusterrolebinding',
    'telepod-e2e-nobody-view',
    '--clusterrole=view',
    `--serviceaccount=${NS}:nobody`,
  ]);
  const notInstallable = await telepodInWorkstation(
    tb,
    '--kubeconfig',
    nobody,
    '-n',
    NS,
    'connect',
    '--manager-namespace',
    'telepod-e2e-absent',
  );
  await kubectl(tb, ['delete', 'clusterrolebinding', 'telepod-e2e-nobody-view']);
  await rm(dir, { recursive: true, force: true });
  assert.equal(notInstallable.code, 1, notInstallable.stderr);
  assert.match(
    notInstallable.stderr,
    /you may not install the traffic manager in namespace telepod-e2e-absent \(not allowed: .*cannot create resource "namespaces".*ask a cluster admin to run `telepod install`/,
  );
  assert.doesNotMatch((await inWorkstation(tb, 'nft', ['list', 'tables'])).stdout, /telepod/);
  await telepod('quit');
});

test('the tunnel comes back by itself when the manager pod is deleted', async () => {
  assert.equal((await telepod('connect')).code, 0);
  await kubectl(tb, [
    '-n',
    'telepod',
    'delete',
    'pod',
    '-l',
    'app.kubernetes.io/name=telepod-manager',
    '--wait=false',
  ]);
  await waitUntil('a reconnected tunnel', 60_000, async () => {
    const status = JSON.parse((await telepod('status', '-o', 'json')).stdout) as { reconnects: number };
    return status.reconnects >= 1 && (await curl('http://service-b:8000/')).stdout === 'Hello, world!\n';
  });
  assert.equal((await telepod('quit')).code, 0);
});

test('the tunnel comes back by itself after the API server restarts', async () => {
  assert.equal((await telepod('connect')).code, 0);
  await restartApiServer();
  await waitUntil('a reconnected tunnel', 60_000, async () => {
    const status = JSON.parse((await telepod('status', '-o', 'json')).stdout) as { reconnects: number };
    return status.reconnects >= 1 && (await curl('http://service-b:8000/')).stdout === 'Hello, world!\n';
  });
  assert.equal((await telepod('quit')).code, 0);
});

test('a user who is not root connects through sudo, and only they can use the daemon socket', async () => {
  const user = 'telepod-e2e';
  await run('userdel', [user]).catch(() => undefined);
  await run('useradd', ['--no-create-home', '--shell', '/bin/sh', user]);
  await writeFile('/etc/sudoers.d/telepod-e2e', `${user} ALL=(root) NOPASSWD: ALL\n`, { mode: 0o440 });
  const asUser = (...args: string[]) =>
    inWorkstation(tb, 'su', [
      user,
      '-s',
      '/bin/sh',
      '-c',
      [process.execPath, TELEPOD, '--kubeconfig', tb.workstation.kubeconfig, '-n', NS, ...args].join(' '),
    ]);
  try {
    const connected = await asUser('connect');
    assert.equal(connected.code, 0, connected.stderr);
    const { uid } = await stat('/run/telepod/daemon.sock');
    const owner = (await run('id', ['-u', user])).stdout.trim();
    assert.equal(String(uid), owner);
    assert.equal((await stat('/run/telepod/daemon.sock')).mode & 0o777, 0o600);
    const daemon = JSON.parse((await asUser('status', '-o', 'json')).stdout) as { daemonPid: number };
    assert.equal((await run('ps', ['-o', 'user=', '-p', String(daemon.daemonPid)])).stdout.trim(), 'root');
    assert.equal((await curl('http://service-b:8000/')).stdout, 'Hello, world!\n');
    const quit = await asUser('quit');
    assert.equal(quit.stdout.trim(), 'disconnected', quit.stderr);
    assert.doesNotMatch((await inWorkstation(tb, 'nft', ['list', 'tables'])).stdout, /telepod/);
  } finally {
    await telepod('quit');
    await rm('/etc/sudoers.d/telepod-e2e', { force: true });
    await run('userdel', [user]).catch(() => undefined);
  }
});

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
