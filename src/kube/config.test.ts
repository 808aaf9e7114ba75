// Unit tests of kubeconfig loading: KUBECONFIG lists merge as kubectl merges them, and exec
// credential plugins run with the environment the CLI sends (and through setpriv as the user).
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { kubeConfigFromText, kubeconfigFiles, loadKubeConfig, mergedKubeconfig } from './config.ts';
import { runPluginsAs } from './credential-plugins.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'telepod-kubeconfig-'));
  await writeFile(
    join(dir, 'clusters.yaml'),
    `apiVersion: v1
kind: Config
current-context: first
clusters: [{ name: c, cluster: { server: 'https://10.0.0.1:6443' } }]
contexts:
  - { name: first, context: { cluster: c, user: plugin, namespace: team-a } }
users: [{ name: plugin, user: { token: from-first-file } }]
`,
  );
  await writeFile(
    join(dir, 'users.yaml'),
    `apiVersion: v1
kind: Config
current-context: second
clusters: [{ name: c, cluster: { server: 'https://10.9.9.9:6443' } }]
contexts: [{ name: second, context: { cluster: c, user: exec } }]
users:
  - name: plugin
    user: { token: from-second-file }
  - name: exec
    user:
      exec:
        apiVersion: client.authentication.k8s.io/v1
        command: ./bin/token-plugin
        interactiveMode: Never
`,
  );
});
after(() => rm(dir, { recursive: true, force: true }));

test('KUBECONFIG a:b merges like kubectl: the first definition and the first current-context win', () => {
  const env = {
    KUBECONFIG: `${join(dir, 'clusters.yaml')}:${join(dir, 'missing.yaml')}:${join(dir, 'users.yaml')}`,
  };
  const files = kubeconfigFiles({}, env);
  assert.deepEqual(files, [join(dir, 'clusters.yaml'), join(dir, 'users.yaml')], 'missing files are skipped');
  const kc = mergedKubeconfig(files);
  assert.equal(kc.getCurrentContext(), 'first');
  assert.equal(kc.getCluster('c')?.server, 'https://10.0.0.1:6443');
  assert.equal(kc.getUser('plugin')?.token, 'from-first-file');
  assert.equal(kc.getContextObject('second')?.user, 'exec');
  // A plugin named by a relative path runs from its own kubeconfig's folder.
  assert.equal((kc.getUser('exec')?.exec as { command: string }).command, join(dir, 'bin/token-plugin'));
});

test('--kubeconfig names one file; a KUBECONFIG of missing files only is a usage error', () => {
  assert.deepEqual(kubeconfigFiles({ kubeconfig: '/x' }, { KUBECONFIG: '/a:/b' }), ['/x']);
  assert.throws(
    () => kubeconfigFiles({}, { KUBECONFIG: '/nonexistent-a:/nonexistent-b' }),
    /none of the kubeconfig files/,
  );
  assert.throws(
    () => loadKubeConfig({ kubeconfig: join(dir, 'nothing.yaml') }),
    /cannot read the kubeconfig/,
  );
});

test('the merged text a daemon gets selects the same context and namespace', () => {
  const kc = mergedKubeconfig([join(dir, 'clusters.yaml'), join(dir, 'users.yaml')]);
  const loaded = kubeConfigFromText(kc.exportConfig(), {});
  assert.equal(loaded.context, 'first');
  assert.equal(loaded.namespace, 'team-a');
  assert.equal(kubeConfigFromText(kc.exportConfig(), { context: 'second' }).namespace, 'default');
  assert.throws(() => kubeConfigFromText(kc.exportConfig(), { context: 'nope' }), /context "nope"/);
});

test('an exec plugin runs with the environment the CLI sent: it finds the token in that HOME', async () => {
  const home = join(dir, 'home');
  await writeFile(
    join(dir, 'plugin.sh'),
    `#!/bin/sh
printf '{"apiVersion":"client.authentication.k8s.io/v1","kind":"ExecCredential","status":{"token":"%s"}}' "$(cat "$HOME/tok")"
`,
  );
  await chmod(join(dir, 'plugin.sh'), 0o755);
  await rm(home, { recursive: true, force: true });
  await mkdir(home);
  await writeFile(join(home, 'tok'), 'token-of-the-user');
  const kc = kubeConfigFromText(
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'x',
      clusters: [{ name: 'c', cluster: { server: 'https://10.0.0.1:6443' } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      users: [
        {
          name: 'u',
          user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: join(dir, 'plugin.sh') } },
        },
      ],
    }),
    {},
  ).kc;
  runPluginsAs(kc, { HOME: home, PATH: process.env.PATH ?? '/usr/bin:/bin' }, undefined);
  const options: { headers?: Record<string, string> } = {};
  await kc.applyToHTTPSOptions(options);
  assert.equal(options.headers?.Authorization, 'Bearer token-of-the-user');
});

test('as root for a sudo user, a plugin runs through setpriv as that user; its own env entries win', () => {
  const kc = mergedKubeconfig([join(dir, 'users.yaml')]);
  const exec = {
    ...(kc.getUser('exec')!.exec as object),
    args: ['--flag'],
    env: [{ name: 'HOME', value: '/plugin-home' }],
  };
  Object.assign(kc.getUser('exec')!, { exec });
  runPluginsAs(kc, { HOME: '/home/dev', AWS_PROFILE: 'dev' }, { uid: 1234, gid: 2345 });
  const wrapped = kc.getUser('exec')!.exec as {
    command: string;
    args: string[];
    env: { name: string; value: string }[];
  };
  assert.equal(wrapped.command, 'setpriv');
  assert.deepEqual(wrapped.args, [
    '--reuid',
    '1234',
    '--regid',
    '2345',
    '--init-groups',
    '--',
    join(dir, 'bin/token-plugin'),
    '--flag',
  ]);
  const env = Object.fromEntries(wrapped.env.map((e) => [e.name, e.value]));
  assert.deepEqual(env, { HOME: '/plugin-home', AWS_PROFILE: 'dev' });
  assert.equal(kc.getUser('plugin')!.exec, undefined, 'users without a plugin are left alone');
});
