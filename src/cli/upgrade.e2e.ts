// e2e on the testbed: versions that differ. A daemon of another protocol is refused with what
// to run; a `connect` does not replace a manager of another version that other sessions use
// (it says so and uses it); `telepod install` upgrades it, the sessions carry over, and the
// bundles of earlier versions are deleted.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, test } from 'node:test';
import { Tunnel } from '../daemon/tunnel.ts';
import { loadKubeConfig } from '../kube/config.ts';
import { waitForManagerPod } from '../kube/manager-pods.ts';
import { openPortForward } from '../kube/portforward.ts';
import { MANAGER_PATHS, MANAGER_PORT } from '../protocol/paths.ts';
import { PROTOCOL_VERSION, TELEPOD_VERSION } from '../protocol/version.ts';
import {
  ensureTestbed,
  kubectl,
  telepodInWorkstation,
  waitUntil,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';

const MANAGER_NS = 'telepod';
const OLD_BUNDLE = 'telepod-manager-0ld0ld0ld0';
const SESSION_LEASES = 'app.kubernetes.io/managed-by=telepod';
let tb: TestbedStatus;

const telepod = (...args: string[]) => telepodInWorkstation(tb, ...args);

/** A port-forward to a ready manager pod, from the host with the admin's kubeconfig. */
async function managerTransport() {
  const { kc } = loadKubeConfig({ kubeconfig: tb.kubeconfig });
  const pod = await waitForManagerPod(kc, MANAGER_NS, undefined, 120_000);
  return openPortForward(kc, MANAGER_NS, pod, MANAGER_PORT);
}

async function deployment(): Promise<{
  metadata: { labels: Record<string, string> };
  spec: { template: { spec: { volumes: { configMap?: { name: string } }[] } } };
}> {
  return JSON.parse(
    await kubectl(tb, ['-n', MANAGER_NS, 'get', 'deploy', 'telepod-manager', '-o', 'json']),
  ) as Awaited<ReturnType<typeof deployment>>;
}

const bundleOf = async () => (await deployment()).spec.template.spec.volumes[0]!.configMap!.name;

before(async () => {
  tb = await ensureTestbed();
  await telepod('quit');
  const installed = await telepod('install');
  assert.equal(installed.code, 0, installed.stderr);
});

after(async () => {
  await telepod('quit');
  await telepod('install');
});

test('a daemon of another protocol is refused with what to run', async () => {
  const transport = await managerTransport();
  const client = http2.connect('http://telepod-manager', { createConnection: () => transport });
  try {
    const ask = (body: object) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = client.request({ ':method': 'POST', ':path': MANAGER_PATHS.sessions });
        let status = 0;
        let text = '';
        req.on('response', (h) => (status = Number(h[':status'])));
        req.setEncoding('utf8').on('data', (c: string) => (text += c));
        req.on('end', () => resolve({ status, text }));
        req.on('error', reject);
        req.end(JSON.stringify(body));
      });
    const older = await ask({ holder: 'old@e2e', version: '0.0.9', protocol: PROTOCOL_VERSION - 1 });
    assert.equal(older.status, 409);
    assert.match(older.text, new RegExp(`upgrade telepod to ${TELEPOD_VERSION.replaceAll('.', '\\.')}`));
    const newer = await ask({ holder: 'new@e2e', version: '9.9.9', protocol: PROTOCOL_VERSION + 1 });
    assert.equal(newer.status, 409);
    assert.match(newer.text, /use telepod .*or upgrade the manager for everyone with `telepod install/);
  } finally {
    client.close();
  }
});

test('connect keeps a manager of another version that other sessions use; install upgrades it, the sessions carry over, old bundles go', async () => {
  // "Another version": the running manager, moved onto a copy of its bundle under another name.
  const current = await bundleOf();
  const copy = JSON.parse(
    await kubectl(tb, ['-n', MANAGER_NS, 'get', 'configmap', current, '-o', 'json']),
  ) as { metadata: Record<string, unknown>; data: unknown };
  copy.metadata = { name: OLD_BUNDLE, namespace: MANAGER_NS, labels: copy.metadata.labels };
  await kubectl(tb, ['-n', MANAGER_NS, 'delete', 'configmap', OLD_BUNDLE, '--ignore-not-found']);
  await kubectl(tb, ['create', '-f', '-'], JSON.stringify(copy));
  await kubectl(tb, [
    '-n',
    MANAGER_NS,
    'patch',
    'deploy',
    'telepod-manager',
    '--type=json',
    '-p',
    JSON.stringify([
      { op: 'replace', path: '/spec/template/spec/volumes/0/configMap/name', value: OLD_BUNDLE },
      { op: 'replace', path: '/metadata/labels/app.kubernetes.io~1version', value: '0.0.9' },
      { op: 'replace', path: '/metadata/annotations/telepod.io~1spec-hash', value: 'an-older-spec' },
    ]),
  ]);
  await kubectl(tb, ['-n', MANAGER_NS, 'rollout', 'status', 'deploy/telepod-manager', '--timeout=120s']);
  // Sessions of earlier tests whose daemons went without goodbye count until the manager
  // expires them and deletes their Leases: wait for that, so that "1 other" below is exact.
  await waitUntil('the sessions of earlier tests to expire', 60_000, async () => {
    const leases = await kubectl(tb, ['-n', MANAGER_NS, 'get', 'leases', '-l', SESSION_LEASES, '-o', 'name']);
    return leases.trim() === '';
  });
  // Another developer's session holds it.
  const other = await Tunnel.open(await managerTransport(), { holder: 'other@e2e' });
  // Renewed as its daemon would.
  const renewal = setInterval(() => void other.renewLease().catch(() => undefined), 5000);
  try {
    const connected = await telepod('connect');
    assert.equal(connected.code, 0, connected.stderr);
    assert.match(
      connected.stderr,
      /the traffic manager in telepod runs telepod 0\.0\.9 and serves 1 other sessions: using it as it is \(`telepod install` upgrades it/,
    );
    assert.equal(await bundleOf(), OLD_BUNDLE, 'connect did not replace it');
    assert.equal((await telepod('quit')).code, 0);

    const installed = await telepod('install');
    assert.equal(installed.code, 0, installed.stderr);
    assert.equal(await bundleOf(), current);
    assert.equal((await deployment()).metadata.labels['app.kubernetes.io/version'], TELEPOD_VERSION);
    await kubectl(tb, ['-n', MANAGER_NS, 'rollout', 'status', 'deploy/telepod-manager', '--timeout=120s']);
    const bundles = await kubectl(tb, ['-n', MANAGER_NS, 'get', 'configmaps', '-o', 'name']);
    assert.doesNotMatch(bundles, new RegExp(OLD_BUNDLE));
    // The other developer's daemon redials with its token: the upgraded manager took its session back.
    let resumed: Tunnel | undefined;
    await waitUntil('the session to be resumed by the upgraded manager', 60_000, async () => {
      resumed = await Tunnel.open(await managerTransport(), {
        holder: 'other@e2e',
        resumeToken: other.grant.token,
      });
      return true;
    });
    assert.equal(resumed!.grant.id, other.grant.id);
    await resumed!.end();
    resumed!.close();
  } finally {
    clearInterval(renewal);
    other.close();
  }
});
