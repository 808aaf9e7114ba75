// Unit tests of kubeconfig loading: KUBECONFIG lists merge as kubectl merges them, and exec
// credential plugins run with the environment the CLI sends (and through setpriv as the user).
import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  inlineFiles,
  kubeConfigFromText,
  kubeconfigFiles,
  loadKubeConfig,
  mergedKubeconfig,
} from './config.ts';
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

test('for a sudo user, plugins are spawned as that user; nothing is run or read as root for them', () => {
  const kc = mergedKubeconfig([join(dir, 'users.yaml')]);
  const exec = { ...(kc.getUser('exec')!.exec as object), env: [{ name: 'HOME', value: '/plugin-home' }] };
  Object.assign(kc.getUser('exec')!, { exec });
  const spawnBefore = (kc as unknown as { authenticators: { execFn?: unknown }[] }).authenticators.find(
    (a) => a.execFn,
  )!.execFn;
  runPluginsAs(kc, { HOME: '/home/dev', AWS_PROFILE: 'dev' }, { uid: 1234, gid: 2345 });
  const plugin = kc.getUser('exec')!.exec as { command: string; env: { name: string; value: string }[] };
  assert.equal(plugin.command, join(dir, 'bin/token-plugin'), 'the plugin itself, no root wrapper');
  assert.deepEqual(Object.fromEntries(plugin.env.map((e) => [e.name, e.value])), {
    HOME: '/plugin-home',
    AWS_PROFILE: 'dev',
  });
  const spawnAfter = (kc as unknown as { authenticators: { execFn?: unknown }[] }).authenticators.find(
    (a) => a.execFn,
  )!.execFn;
  assert.notEqual(spawnAfter, spawnBefore, 'plugins are spawned by telepod, as the user');
  assert.equal(kc.getUser('plugin')!.exec, undefined, 'users without a plugin are left alone');

  const withFile = mergedKubeconfig([join(dir, 'users.yaml')]);
  Object.assign(withFile.getCluster('c')!, { caFile: '/etc/shadow' });
  assert.throws(
    () => runPluginsAs(withFile, {}, { uid: 1234, gid: 2345 }),
    /certificate-authority \/etc\/shadow/,
  );
  const gcp = mergedKubeconfig([join(dir, 'users.yaml')]);
  Object.assign(gcp.getUser('plugin')!, { authProvider: { name: 'gcp', config: { 'cmd-path': '/tmp/x' } } });
  assert.throws(() => runPluginsAs(gcp, {}, { uid: 1234, gid: 2345 }), /auth-provider gcp runs commands/);
});

test('the CLI puts the files a kubeconfig names into it as data', async () => {
  await writeFile(join(dir, 'ca.crt'), 'the CA');
  const kc = mergedKubeconfig([join(dir, 'clusters.yaml')]);
  Object.assign(kc.getCluster('c')!, { caFile: 'ca.crt' });
  kc.makePathsAbsolute(dir);
  inlineFiles(kc);
  assert.equal(kc.getCluster('c')!.caFile, undefined);
  assert.equal(Buffer.from(kc.getCluster('c')!.caData!, 'base64').toString(), 'the CA');
});
