// e2e on the testbed: a developer without root, through sudo, with a cloud-style kubeconfig —
// two files in $KUBECONFIG (cluster and context in one, the user in the other) and an exec
// credential plugin that reads a token from the developer's own HOME and refuses to run as
// root — connects, reaches a Service, and intercepts it; the plugin ran as them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import { parse, stringify } from 'yaml';
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
const NS = 'telepod-e2e-kubeconfig';
const USER = 'telepod-e2e-cloud';
const ACCOUNT = 'telepod-e2e-exec';
const TELEPOD = fileURLToPath(new URL('../../dist/telepod.mjs', import.meta.url));
let tb: TestbedStatus;
let deleteNamespace: () => Promise<void>;
let home: string;

/** Runs telepod as the user, with the two-file KUBECONFIG, in the workstation netns. */
function asUser(...args: string[]) {
  const command = [process.execPath, TELEPOD, '-n', NS, ...args].join(' ');
  const kubeconfig = `${home}/.kube/cluster.yaml:${home}/.kube/user.yaml`;
  return inWorkstation(tb, 'su', [USER, '-s', '/bin/sh', '-c', `KUBECONFIG=${kubeconfig} ${command}`]);
}

async function removeUser(): Promise<void> {
  await run('userdel', ['--remove', USER]).catch(() => undefined);
  await rm(`/etc/sudoers.d/${USER}`, { force: true });
}

before(async () => {
  tb = await ensureTestbed();
  await telepodInWorkstation(tb, 'quit');
  deleteNamespace = await createNamespace(tb, NS);
  await deploySeed(tb, NS);
  await removeUser();
  await run('useradd', ['--create-home', '--shell', '/bin/sh', USER]);
  await writeFile(`/etc/sudoers.d/${USER}`, `${USER} ALL=(root) NOPASSWD: ALL\n`, { mode: 0o440 });
  home = (await run('sh', ['-c', `getent passwd ${USER} | cut -d: -f6`])).stdout.trim();

  // The credential: a service account's token, in a file only the user can read.
  await kubectl(tb, ['-n', NS, 'create', 'serviceaccount', ACCOUNT]);
  await kubectl(tb, [
    'create',
    'clusterrolebinding',
    ACCOUNT,
    '--clusterrole=cluster-admin',
    `--serviceaccount=${NS}:${ACCOUNT}`,
  ]);
  const token = (await kubectl(tb, ['-n', NS, 'create', 'token', ACCOUNT, '--duration=1h'])).trim();
  const admin = parse(await readFile(tb.workstation.kubeconfig, 'utf8')) as {
    clusters: { name: string; cluster: Record<string, unknown> }[];
  };
  const files: Record<string, string> = {
    tok: token,
    // Like `aws eks get-token`: prints an ExecCredential, found in the user's HOME, never as root.
    'token-plugin': `#!/bin/sh
[ "$(id -u)" != 0 ] || { echo "token-plugin: run as root" >&2; exit 1; }
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}' "$(cat "$HOME/.kube/tok")"
`,
    'cluster.yaml': stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'cloud',
      clusters: [{ name: 'cloud', cluster: admin.clusters[0]!.cluster }],
      contexts: [{ name: 'cloud', context: { cluster: 'cloud', user: 'cloud-user' } }],
    }),
    'user.yaml': stringify({
      apiVersion: 'v1',
      kind: 'Config',
      users: [
        {
          name: 'cloud-user',
          user: {
            exec: {
              apiVersion: 'client.authentication.k8s.io/v1',
              command: './token-plugin', // relative: from the kubeconfig's own folder, as kubectl does
              interactiveMode: 'Never',
            },
          },
        },
      ],
    }),
  };
  await run('su', [USER, '-s', '/bin/sh', '-c', 'mkdir -m 700 -p "$HOME/.kube"']);
  for (const [name, text] of Object.entries(files)) {
    await writeFile(`${home}/.kube/${name}`, text, { mode: name === 'token-plugin' ? 0o755 : 0o600 });
    await run('chown', [`${USER}:${USER}`, `${home}/.kube/${name}`]);
  }
});

after(async () => {
  await asUser('quit').catch(() => undefined);
  await telepodInWorkstation(tb, 'quit');
  await kubectl(tb, ['delete', 'clusterrolebinding', ACCOUNT, '--ignore-not-found']);
  await removeUser();
  await deleteNamespace?.();
});

test('through sudo, an exec plugin runs as the user with their HOME; a two-file KUBECONFIG merges', async () => {
  const connected = await asUser('connect');
  assert.equal(connected.code, 0, connected.stderr);
  const status = JSON.parse((await asUser('status', '-o', 'json')).stdout) as {
    context: string;
    daemonPid: number;
  };
  assert.equal(status.context, 'cloud', 'the current-context of the first file');
  assert.equal((await run('ps', ['-o', 'user=', '-p', String(status.daemonPid)])).stdout.trim(), 'root');
  const hello = await inWorkstation(tb, 'curl', ['-s', '--max-time', '5', 'http://service-b:8000/']);
  assert.equal(hello.stdout, 'Hello, world!\n');

  const local = startInWorkstation(
    tb,
    `require('http').createServer((q, s) => s.end('from the cloud user')).listen(8124)`,
  );
  try {
    const intercepted = await asUser('intercept', 'service-b', '--port', '8124:http');
    assert.equal(intercepted.code, 0, intercepted.stderr);
    assert.match(intercepted.stdout, /intercepted Deployment/);
    const probe = [
      '-n',
      NS,
      'exec',
      'deploy/service-a',
      '--',
      'node',
      '-e',
      "fetch('http://localhost:8000/').then((r) => r.text()).then((t) => process.stdout.write(t))",
    ];
    await waitUntil(
      'service-a to reach the cloud user',
      15_000,
      async () => (await kubectl(tb, probe).catch(() => '')) === 'service-a got: from the cloud user',
    );
    assert.equal((await asUser('leave', 'service-b', '--restore')).code, 0);
  } finally {
    local.kill();
  }
  const quit = await asUser('quit');
  assert.equal(quit.stdout.trim(), 'disconnected', quit.stderr);
});
