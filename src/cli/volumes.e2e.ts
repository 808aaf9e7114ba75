// e2e on the testbed: the pod's volumes on the workstation under $TELEPOD_ROOT — the
// service-account token equal to the pod's, a ConfigMap and a Secret file read back, a write
// into an emptyDir seen by the app, read-only volumes refused — for intercept, `-- cmd` and a
// plain `run`; `--mount` checked before anything changes; a warning (and no mount) without
// sshfs; nothing mounted after leave, quit, or a kill -9 and the next run.
import assert from 'node:assert/strict';
import {
  appendFile,
  mkdtemp,
  mkdir,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { daemonDir, type DaemonStatus } from '../protocol/daemon-api.ts';
import type { InterceptInfo } from '../protocol/intercept.ts';
import {
  applyManifest,
  createNamespace,
  ensureTestbed,
  inWorkstation,
  kubectl,
  nodeServerManifest,
  ON_SIGTERM_EXIT,
  telepodInWorkstation,
  telepodWithEnv,
  waitForRollout,
  waitUntil,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';

const NS = 'telepod-e2e-volumes';
const SECRET = `vol-s3cr3t-${process.pid}`;
const TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount/token';
let tb: TestbedStatus;
let deleteNamespace: () => Promise<void>;
let scratch: string;

const telepod = (...args: string[]) => telepodInWorkstation(tb, '-n', NS, ...args);

async function telepodOk(...args: string[]) {
  const result = await telepod(...args);
  assert.equal(result.code, 0, result.stderr);
  return result;
}

/** Intercepts "vols" daemon-style and answers where its volumes are mounted. */
async function interceptVols(...extra: string[]): Promise<string> {
  const { stdout } = await telepodOk('-o', 'json', 'intercept', 'vols', '--port', '8005:8000', ...extra);
  const info = JSON.parse(stdout) as InterceptInfo;
  assert.ok(info.volumes?.root, `no volumes: ${info.volumes?.warning}`);
  return info.volumes.root;
}

/** The mount points of every sshfs mount on this machine. */
async function sshfsMounts(): Promise<string[]> {
  const table = await readFile('/proc/self/mountinfo', 'utf8');
  return table
    .split('\n')
    .filter((line) => line.includes(' - fuse.sshfs '))
    .map((line) => line.split(' ')[4]!);
}

function inPod(...command: string[]): Promise<string> {
  return kubectl(tb, ['-n', NS, 'exec', 'deploy/vols', '-c', 'vols', '--', ...command]);
}

async function varsSpec(): Promise<string> {
  return kubectl(tb, ['-n', NS, 'get', 'deploy', 'vols', '-o', 'jsonpath={.spec.template}']);
}

before(async () => {
  tb = await ensureTestbed();
  await telepodInWorkstation(tb, 'quit');
  scratch = await mkdtemp(join(tmpdir(), 'telepod-volumes-e2e-'));
  deleteNamespace = await createNamespace(tb, NS);
  await applyManifest(
    tb,
    `apiVersion: v1
kind: ConfigMap
metadata: { name: vols-config, namespace: ${NS} }
data: { app.conf: "level=debug\\n" }
---
apiVersion: v1
kind: Secret
metadata: { name: vols-secret, namespace: ${NS} }
stringData: { password: ${SECRET} }
---
${nodeServerManifest(
  tb,
  NS,
  'vols',
  `${ON_SIGTERM_EXIT}require('http').createServer((q, s) => s.end('vols')).listen(8000)`,
  {
    container: {
      volumeMounts: [
        { name: 'config', mountPath: '/etc/app', readOnly: true },
        { name: 'secret', mountPath: '/etc/secret', readOnly: true },
        { name: 'scratch', mountPath: '/data' },
      ],
    },
    pod: {
      volumes: [
        { name: 'config', configMap: { name: 'vols-config' } },
        { name: 'secret', secret: { secretName: 'vols-secret' } },
        { name: 'scratch', emptyDir: {} },
      ],
    },
  },
)}`,
  );
  await waitForRollout(tb, NS, 'vols');
});

after(async () => {
  await telepodInWorkstation(tb, 'quit');
  await deleteNamespace?.();
  await rm(scratch, { recursive: true, force: true });
});

test("intercept mounts the pod's volumes: token, ConfigMap and Secret files, a writable emptyDir; leave unmounts", async () => {
  const root = await interceptVols();
  assert.deepEqual((await readdir(root)).sort(), ['data', 'etc', 'var']);
  const token = await readFile(join(root, TOKEN_PATH), 'utf8');
  assert.ok(token.length > 100, 'a service-account token');
  assert.equal(token, await inPod('cat', TOKEN_PATH));
  assert.equal(await readFile(join(root, 'etc/app/app.conf'), 'utf8'), 'level=debug\n');
  assert.equal(await readFile(join(root, 'etc/secret/password'), 'utf8'), SECRET);
  const note = `written on the workstation ${Date.now()}\n`;
  await writeFile(join(root, 'data/from-workstation'), note);
  assert.equal(await inPod('cat', '/data/from-workstation'), note);
  await writeFile(join(root, 'data/from-workstation'), 'overwritten\n'); // open(O_WRONLY|O_TRUNC)
  await appendFile(join(root, 'data/from-workstation'), 'and appended\n');
  assert.equal(await inPod('cat', '/data/from-workstation'), 'overwritten\nand appended\n');
  await inPod('sh', '-c', 'echo written in the pod > /data/from-pod');
  assert.equal(await readFile(join(root, 'data/from-pod'), 'utf8'), 'written in the pod\n');
  await assert.rejects(writeFile(join(root, 'etc/app/new.conf'), 'x'), /EACCES|EROFS|EPERM/);
  await assert.rejects(readFile(join(root, 'etc/passwd')), /ENOENT/); // only the volumes
  const status = await telepodOk('status');
  assert.match(status.stdout, new RegExp(`volumes at ${root}`));
  assert.doesNotMatch(status.stdout, new RegExp(SECRET));

  await telepodOk('leave', 'vols', '--restore');
  assert.ok(!(await sshfsMounts()).includes(root), 'unmounted on leave');
  await assert.rejects(stat(root), /ENOENT/); // the fresh folder is removed again
});

test('the tunnel drops and comes back: the volumes are mounted again on the new one', async () => {
  const root = await interceptVols();
  const reconnects = async () =>
    (JSON.parse((await telepodOk('-o', 'json', 'status')).stdout) as DaemonStatus).reconnects ?? 0;
  const before = await reconnects();
  // Abort the daemon's connections to the API server (the port-forward under the tunnel).
  await inWorkstation(tb, 'ss', ['-K', 'dport', '=', ':6443']);
  const conf = join(root, 'etc/app/app.conf');
  await waitUntil('the tunnel and the volumes to come back', 30_000, async () => {
    if ((await reconnects()) <= before) return false;
    return (await inWorkstation(tb, 'timeout', ['2', 'cat', conf])).stdout === 'level=debug\n';
  });
  assert.ok((await sshfsMounts()).includes(root));
  await telepodOk('leave', 'vols', '--restore');
  assert.deepEqual(await sshfsMounts(), []);
});

test('intercept -- cmd: TELEPOD_ROOT and TELEPOD_MOUNTS; --mount <dir> is used and left in place', async () => {
  const dir = join(scratch, 'chosen');
  await mkdir(dir);
  const result = await telepodOk(
    'intercept',
    'vols',
    '--port',
    '8005:8000',
    '--mount',
    dir,
    '--',
    'sh',
    '-c',
    'printf "%s|%s|" "$TELEPOD_ROOT" "$TELEPOD_MOUNTS"; cat "$TELEPOD_ROOT/etc/app/app.conf"',
  );
  const [root, mounts, conf] = result.stdout.split('|');
  assert.equal(root, dir);
  assert.deepEqual(mounts!.split(':').sort(), [
    '/data',
    '/etc/app',
    '/etc/secret',
    '/var/run/secrets/kubernetes.io/serviceaccount',
  ]);
  assert.equal(conf, 'level=debug\n');
  assert.ok(!(await sshfsMounts()).includes(dir), 'unmounted when the command ended');
  assert.deepEqual(await readdir(dir), []); // the user's folder stays, empty
});

test('--mount to a non-empty folder or a file: a clear error, and nothing changed', async () => {
  const full = join(scratch, 'full');
  await mkdir(full);
  await writeFile(join(full, 'keep'), 'mine');
  const before = await varsSpec();
  for (const [target, message] of [
    [full, /--mount .*full: the folder is not empty/],
    [join(full, 'keep'), /--mount .*keep: not a folder/],
  ] as const) {
    const result = await telepod('intercept', 'vols', '--port', '8005:8000', '--mount', target);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, message);
  }
  assert.equal(await varsSpec(), before);
  assert.deepEqual(await readdir(full), ['keep']);
  assert.deepEqual(await sshfsMounts(), []);
});

test('quit unmounts every volume and removes the folder telepod made', async () => {
  const root = await interceptVols();
  assert.ok((await sshfsMounts()).includes(root));
  await telepodOk('quit');
  assert.deepEqual(await sshfsMounts(), []);
  await assert.rejects(stat(root), /ENOENT/);
  await assert.rejects(stat(`${daemonDir()}/mounts.json`), /ENOENT/); // no state left either
});

test("replace and run --swap-deployment mount the replaced container's volumes too", async () => {
  const show = 'printf "%s|" "$TELEPOD_MOUNTS"; cat "$TELEPOD_ROOT/etc/app/app.conf"';
  const replaced = await telepodOk('replace', 'vols', '--port', '8005:8000', '--', 'sh', '-c', show);
  const swapped = await telepodOk(
    'run',
    '--swap-deployment',
    'vols',
    '--expose',
    '8005:8000',
    '--',
    'sh',
    '-c',
    show,
  );
  for (const { stdout } of [replaced, swapped]) {
    const [mounts, conf] = stdout.split('|');
    assert.ok(mounts!.split(':').includes('/etc/secret'), mounts);
    assert.equal(conf, 'level=debug\n');
  }
  assert.deepEqual(await sshfsMounts(), []);
});

test("a plain run gets the session's own proxy pod: its env, token and namespace under TELEPOD_ROOT", async () => {
  const result = await telepodOk(
    'run',
    '--',
    'sh',
    '-c',
    `printf "%s|%s|" "$TELEPOD_ROOT" "$KUBERNETES_SERVICE_HOST"; cat "$TELEPOD_ROOT${TOKEN_PATH.replace('token', 'namespace')}"; test -s "$TELEPOD_ROOT${TOKEN_PATH}" && echo "|token"`,
  );
  const [root, apiHost, namespace, token] = result.stdout.split('|');
  assert.match(root!, /telepod-/);
  assert.match(apiHost!, /^10\.96\./); // the pod's environment, as the kubelet set it
  assert.equal(namespace, NS);
  assert.equal(token, 'token\n');
  assert.deepEqual(await sshfsMounts(), []);
  await assert.rejects(stat(root!), /ENOENT/);
  const left = await kubectl(tb, ['-n', NS, 'get', 'deploy,svc,configmap', '-o', 'name']);
  assert.doesNotMatch(left, /telepod-/);
});

test('without sshfs: a warning that says how to install it, and the command still runs', async () => {
  // A PATH with every command of this machine except sshfs, for telepod and its daemon.
  const bin = join(scratch, 'bin-without-sshfs');
  await mkdir(bin);
  for (const dir of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names.filter((n) => n !== 'sshfs')) {
      await symlink(join(dir, name), join(bin, name)).catch(() => undefined); // first one wins
    }
  }
  const result = await telepodWithEnv(
    tb,
    { PATH: bin },
    '-n',
    NS,
    'run',
    '--',
    'sh',
    '-c',
    'echo "root=${TELEPOD_ROOT:-unset}|$TELEPOD_MOUNTS"',
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^root=unset\|\/var\/run\/secrets\/kubernetes.io\/serviceaccount\n$/);
  assert.match(result.stderr, /volumes not mounted: sshfs is not installed: .*apt install sshfs/);
  assert.deepEqual(await sshfsMounts(), []);
});

test('kill -9 of the daemon and its sshfs: the next telepod unmounts what was left', async () => {
  const root = await interceptVols();
  const status = JSON.parse((await telepodOk('-o', 'json', 'status')).stdout) as DaemonStatus;
  const sshfs = await inWorkstation(tb, 'pgrep', ['-f', `sshfs :/ ${root}`]);
  assert.equal(sshfs.code, 0, 'sshfs runs');
  await inWorkstation(tb, 'kill', ['-9', ...sshfs.stdout.trim().split('\n'), String(status.daemonPid)]);
  await waitUntil(
    'the daemon to be gone',
    10_000,
    async () => (await inWorkstation(tb, 'kill', ['-0', String(status.daemonPid)])).code !== 0,
  );
  assert.ok((await sshfsMounts()).includes(root), 'a dead sshfs leaves its mount behind');

  const quit = await telepod('quit');
  assert.equal(quit.code, 0, quit.stderr);
  assert.match(quit.stderr, /crashed daemon/);
  assert.deepEqual(await sshfsMounts(), []);
  await assert.rejects(stat(root), /ENOENT/);
  assert.ok(!(await readdir(tmpdir())).includes(basename(root)));
  // The manager restores the workload once the dead session's lease runs out.
  await waitUntil('vols to be restored', 60_000, async () => !(await varsSpec()).includes('telepod-agent'));
});
