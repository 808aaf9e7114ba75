// e2e on the testbed: rootless mode. A throwaway user without sudo runs `telepod run --rootless`
// in the workstation netns: cluster names and addresses work for curl, a static (CGO_ENABLED=0)
// Go binary, Node and Python; an outside name comes from the machine's resolver and a server on
// the workstation's 127.0.0.1 is reachable; a swap delivers service-a's request to a server the
// command started; without user namespaces the message is clear and nothing changed; and after
// each run nothing of the session is left.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import {
  OUTSIDE_ADDRESS,
  OUTSIDE_NAME,
  startFakeResolver,
  type FakeResolver,
} from '../../testbed/lib/fake-resolver.ts';
import {
  createNamespace,
  deploySeed,
  ensureTestbed,
  inWorkstation,
  kubectl,
  startInWorkstation,
  telepodInWorkstation,
  waitUntil,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';

const run = promisify(execFile);
const NS = 'telepod-e2e-rootless';
const USER = 'telepod-e2e-nosudo';
const TELEPOD = fileURLToPath(new URL('../../dist/telepod.mjs', import.meta.url));
const LOCAL_PORT = 18432; // a "database" on the workstation's loopback
const NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
let tb: TestbedStatus;
let deleteNamespace: () => Promise<void>;
let home: string;
let uid: string;
let scratch: string;
let goFetch: string;
let resolver: FakeResolver;

/** `telepod -n NS <args>` as the user (no sudo rights), in the workstation netns. */
function asUser(...args: string[]) {
  const quoted = args.map((a) => `'${a.replaceAll("'", `'\\''`)}'`).join(' ');
  const command = `${process.execPath} ${TELEPOD} --kubeconfig "$HOME/.kube/config" -n ${NS} ${quoted}`;
  // Without root's runtime directory or run directory: the user's daemon picks its own.
  return inWorkstation(tb, 'su', [
    USER,
    '-s',
    '/bin/sh',
    '-c',
    `unset XDG_RUNTIME_DIR TELEPOD_RUN_DIR; ${command}`,
  ]);
}

/** What of the user's session is left: processes, FUSE mounts, telepod objects, session Leases. */
async function leftovers(): Promise<string[]> {
  const left: string[] = [];
  // The namespace's holder ends right after its daemon (its channel closed): allow it a moment.
  let processes = '';
  await waitUntil("the user's processes to end", 5_000, async () => {
    processes = (await run('pgrep', ['-u', USER, '-a']).catch(() => ({ stdout: '' }))).stdout.trim();
    return !processes;
  }).catch(() => undefined);
  if (processes) left.push(`processes: ${processes}`);
  const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').filter((l) => l.includes('sshfs'));
  if (mounts.length) left.push(`mounts: ${mounts.join('; ')}`);
  const objects = await kubectl(tb, ['-n', NS, 'get', 'deploy,svc,configmap', '-o', 'name']);
  if (/telepod-/.test(objects)) left.push(`objects: ${objects}`);
  const spec = await kubectl(tb, ['-n', NS, 'get', 'deploy', 'service-b', '-o', 'jsonpath={.spec.replicas}']);
  if (spec !== '1') left.push(`service-b has ${spec} replicas`);
  const containers = await kubectl(tb, [
    '-n',
    NS,
    'get',
    'deploy',
    'service-b',
    '-o',
    'jsonpath={.spec.template.spec.containers[*].name}',
  ]);
  if (containers.includes('telepod')) left.push(`service-b's containers: ${containers}`);
  const leases = await kubectl(tb, ['-n', 'telepod', 'get', 'leases', '-o', 'jsonpath={..holderIdentity}']);
  if (leases.includes(USER)) left.push(`session leases: ${leases}`);
  return left;
}

before(async () => {
  tb = await ensureTestbed();
  deleteNamespace = await createNamespace(tb, NS);
  await deploySeed(tb, NS);
  await run('userdel', ['--remove', USER]).catch(() => undefined);
  await run('useradd', ['--create-home', '--shell', '/bin/sh', USER]);
  home = (await run('sh', ['-c', `getent passwd ${USER} | cut -d: -f6`])).stdout.trim();
  uid = (await run('id', ['-u', USER])).stdout.trim();
  const sudo = await run('sudo', ['-l', '-U', USER]).catch(() => ({ stdout: '' }));
  assert.doesNotMatch(sudo.stdout, /may run/, 'the user has no sudo rights');
  await run('su', [USER, '-s', '/bin/sh', '-c', 'mkdir -m 700 -p "$HOME/.kube"']);
  await writeFile(`${home}/.kube/config`, await readFile(tb.workstation.kubeconfig), { mode: 0o600 });
  await run('chown', [`${USER}:${USER}`, `${home}/.kube/config`]);
  // A static Go client: its own resolver reads /etc/resolv.conf, no libc in the way.
  scratch = await mkdtemp(join(tmpdir(), 'telepod-rootless-e2e-'));
  await writeFile(
    join(scratch, 'main.go'),
    `package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	r, err := http.Get(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	body, _ := io.ReadAll(r.Body)
	fmt.Print(string(body))
}
`,
  );
  goFetch = join(scratch, 'gofetch');
  await run('go', ['build', '-o', goFetch, 'main.go'], {
    cwd: scratch,
    env: {
      ...process.env,
      PATH: `/usr/local/go/bin:${process.env.PATH}`,
      GOTOOLCHAIN: 'local',
      CGO_ENABLED: '0',
      GO111MODULE: 'off',
    },
  });
  await run('chmod', ['-R', 'a+rX', scratch]);
  resolver = await startFakeResolver(tb);
});

after(async () => {
  await asUser('quit', '--rootless').catch(() => undefined);
  await resolver?.stop();
  await run('userdel', ['--remove', USER]).catch(() => undefined);
  await rm(scratch, { recursive: true, force: true });
  await rm(`/tmp/telepod-${uid}`, { recursive: true, force: true }); // the user's daemon directory
  await deleteNamespace?.();
});

test('without root or sudo, curl, a static Go binary, Node and Python reach service-b by name', async () => {
  const ldd = await run('ldd', [goFetch]).catch((err: { stdout: string; stderr: string }) => err);
  assert.match(`${ldd.stdout}${ldd.stderr}`, /not a dynamic executable/, 'the Go client is static');
  const url = 'http://service-b:8000/';
  const clients = [
    `curl -sS --max-time 10 ${url}`,
    `${goFetch} ${url}`,
    `${process.execPath} -e "fetch('${url}').then((r) => r.text()).then((t) => process.stdout.write(t))"`,
    `python3 -c "import urllib.request; print(urllib.request.urlopen('${url}').read().decode(), end='')"`,
  ];
  const script = clients.map((c) => `${c}; echo "|$?"`).join('; ');
  // Also the session's pod's environment; this machine keeps /dev/fuse root's (no udev), so
  // its volumes are not mounted for the user, with the reason and what to change.
  const pod = 'echo "$KUBERNETES_SERVICE_HOST|${TELEPOD_ROOT:-unset}"';
  const result = await asUser('run', '--rootless', '--', 'sh', '-c', `id -u; ${pod}; ${script}`);
  assert.equal(result.code, 0, result.stderr);
  const [who, podView, ...answers] = result.stdout.split('\n');
  assert.equal(who, uid, 'the command runs as the user, not as root');
  assert.match(podView!, /^10\.96\.\d+\.\d+\|unset$/);
  assert.match(
    result.stderr,
    /volumes not mounted: .*\/dev\/fuse: Permission denied \(FUSE is not open to this user: \/dev\/fuse needs mode 0666/,
  );
  assert.deepEqual(
    answers.join('\n').split('|0\n').slice(0, 4),
    Array(4).fill('Hello, world!\n'),
    result.stdout,
  );
  assert.deepEqual(await leftovers(), []);
});

test("where FUSE is open to the user (/dev/fuse 0666, as udev sets it), the pod's volumes are under $TELEPOD_ROOT", async () => {
  const mode = (await run('stat', ['-c', '%a', '/dev/fuse'])).stdout.trim();
  await run('chmod', ['0666', '/dev/fuse']);
  try {
    const result = await asUser(
      'run',
      '--rootless',
      '--',
      'sh',
      '-c',
      `cat "$TELEPOD_ROOT${NAMESPACE_FILE}"`,
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout, NS);
  } finally {
    await run('chmod', [mode, '/dev/fuse']);
  }
  assert.deepEqual(await leftovers(), []);
});

test("in the same run: an outside name from the machine's resolver, the workstation's 127.0.0.1, a ClusterIP", async () => {
  const local = startInWorkstation(
    tb,
    `require('http').createServer((q, s) => s.end('local database\\n')).listen(${LOCAL_PORT}, '127.0.0.1')`,
  );
  try {
    const clusterIp = (
      await kubectl(tb, ['-n', NS, 'get', 'svc', 'service-b', '-o', 'jsonpath={.spec.clusterIP}'])
    ).trim();
    resolver.asked.length = 0;
    const result = await asUser(
      'run',
      '--rootless',
      '--',
      'sh',
      '-c',
      `getent hosts ${OUTSIDE_NAME}; curl -sS --max-time 10 http://127.0.0.1:${LOCAL_PORT}/; ` +
        `curl -sS --max-time 10 http://${clusterIp}:8000/`,
    );
    assert.equal(result.code, 0, result.stderr);
    const [resolved, database, cluster] = result.stdout.split('\n');
    assert.match(resolved!, new RegExp(`^${OUTSIDE_ADDRESS.replaceAll('.', '\\.')}\\s+${OUTSIDE_NAME}`));
    assert.ok(
      resolver.asked.includes(OUTSIDE_NAME),
      `the machine's resolver was asked: ${resolver.asked.join(', ')}`,
    );
    assert.equal(database, 'local database');
    assert.equal(cluster, 'Hello, world!');
  } finally {
    local.kill();
  }
  assert.deepEqual(await leftovers(), []);
});

for (const [how, args] of [
  ['run --swap-deployment', ['run', '--rootless', '--swap-deployment', 'service-b', '--expose', '8000']],
  ['intercept', ['intercept', 'service-b', '--rootless', '--port', '8000']],
] as const) {
  test(`${how} delivers service-a's request to a server the command started in its namespace`, async () => {
    const server = `${process.execPath} -e "require('http').createServer((q, s) => s.end('Hello from the rootless namespace\\n')).listen(8000, '127.0.0.1')"`;
    const ask =
      `${server} & ` +
      'until curl -s -o /dev/null http://127.0.0.1:8000/; do sleep 0.1; done; ' +
      'for i in $(seq 60); do out=$(curl -sS --max-time 2 http://service-a:8000/); ' +
      'case "$out" in *rootless*) echo "$out"; kill $!; exit 0;; esac; sleep 0.5; done; echo "$out"; kill $!; exit 1';
    const result = await asUser(...args, '--', 'sh', '-c', ask);
    assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
    assert.equal(result.stdout, 'service-a got: Hello from the rootless namespace\n');
    assert.deepEqual(await leftovers(), []);
  });
}

test('kill -9 of the rootless daemon: its namespace ends at once, the swap is undone within the lease', async () => {
  const running = asUser(
    'run',
    '--rootless',
    '--swap-deployment',
    'service-b',
    '--expose',
    '8000',
    '--',
    'sleep',
    '600',
  );
  let status: { daemonPid: number; rootless?: { namespacePid: number } } | undefined;
  await waitUntil('the rootless session', 90_000, async () => {
    const answer = await asUser('-o', 'json', 'status', '--rootless');
    status = answer.code === 0 ? (JSON.parse(answer.stdout) as typeof status) : undefined;
    return !!status?.rootless;
  });
  // The swap is in place once the command runs.
  let sleeper = '';
  await waitUntil('the command to run', 90_000, async () => {
    sleeper = (await run('pgrep', ['-u', USER, '-x', 'sleep']).catch(() => ({ stdout: '' }))).stdout.trim();
    return sleeper !== '';
  });
  assert.match(await kubectl(tb, ['-n', NS, 'get', 'deploy', '-o', 'name']), /telepod-swap-service-b/);
  process.kill(status!.daemonPid, 'SIGKILL');
  const killed = Date.now();
  const holderGone = async () =>
    !(await run('kill', ['-0', String(status!.rootless!.namespacePid)]).then(
      () => true,
      () => false,
    ));
  await waitUntil("the namespace's holder to end with its daemon", 10_000, holderGone);
  await waitUntil('the manager to undo the swap once the lease ran out', 90_000, async () => {
    const objects = await kubectl(tb, ['-n', NS, 'get', 'deploy,svc,configmap', '-o', 'name']);
    return !/telepod-/.test(objects);
  });
  process.stdout.write(`# swap undone ${((Date.now() - killed) / 1000).toFixed(1)} s after kill -9\n`);
  // The command itself is the user's: it ends when they end it, and telepod with it.
  process.kill(Number(sleeper), 'SIGTERM');
  const ended = await running;
  assert.notEqual(ended.code, 0, 'the command was killed');
  assert.deepEqual(await leftovers(), []);
});

test('intercept --rootless without a command is a usage error, and nothing changed', async () => {
  const result = await asUser('intercept', 'service-b', '--rootless', '--port', '8000');
  assert.equal(result.code, 2, result.stderr);
  assert.match(result.stderr, /intercept --rootless: give the command to run after --/);
  assert.deepEqual(await leftovers(), []);
});

/**
 * `telepod <args>` as the user inside a user namespace made by root in which
 * user.max_user_namespaces is 0: the sysctl set off for this run alone. (This machine keeps
 * CAP_SYS_RESOURCE from root in the first namespace, so the machine-wide value cannot be
 * changed; the child namespace's own value limits every namespace made below it the same way.)
 */
async function asUserWithoutNamespaces(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const quoted = args.map((a) => `'${a}'`).join(' ');
  const inner =
    `echo 0 > /proc/sys/user/max_user_namespaces || exit 99; ` +
    `exec setpriv --reuid=${uid} --regid=${uid} --init-groups env -u XDG_RUNTIME_DIR -u TELEPOD_RUN_DIR HOME=${home} ` +
    `${process.execPath} ${TELEPOD} --kubeconfig ${home}/.kube/config -n ${NS} ${quoted}`;
  // The shell was started before its ids were mapped (no capabilities yet): once they are, it
  // starts a new one as the namespace's root, which may set the namespace's sysctl.
  const command = `echo ready; read go; exec sh -c "${inner}"`;
  // nsenter and unshare exec in place: the child's pid is the shell's, in the new namespace.
  const child = spawn(
    'nsenter',
    [`--net=/run/netns/${tb.workstation.netns}`, '--', 'unshare', '--user', '--', 'sh', '-c', command],
    {
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  await new Promise<void>((resolve) =>
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
      if (stdout.startsWith('ready\n')) resolve();
    }),
  );
  // Root maps every id to itself, as outside: the user stays the user.
  await writeFile(`/proc/${child.pid}/uid_map`, '0 0 4294967295\n');
  await writeFile(`/proc/${child.pid}/gid_map`, '0 0 4294967295\n');
  child.stdin.end('go\n');
  const code = await exited;
  return { code, stdout: stdout.slice('ready\n'.length), stderr };
}

test('without user namespaces: what to change, a non-zero exit, and nothing changed', async () => {
  const dir = `/tmp/telepod-${uid}`;
  await rm(dir, { recursive: true, force: true });
  const result = await asUserWithoutNamespaces('run', '--rootless', '--', 'true');
  assert.equal(result.code, 1, result.stderr);
  assert.match(
    result.stderr,
    /^telepod: rootless mode needs unprivileged user namespaces, and this machine does not allow them: \/proc\/sys\/user\/max_user_namespaces is 0: .*To allow them \(as root\): sysctl -w user\.max_user_namespaces=\d+/,
  );
  await assert.rejects(readFile(join(dir, 'daemon.log')), /ENOENT/); // no daemon, not even its folder
  await assert.rejects(readFile(dir), /ENOENT/);
  assert.deepEqual(await leftovers(), []);
  assert.equal((await telepodInWorkstation(tb, 'status')).stdout, 'not connected\n');
});
