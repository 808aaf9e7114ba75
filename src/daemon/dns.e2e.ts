// e2e on the testbed: with telepod connected, names outside the cluster still go to the
// machine's own resolver (and only there), cluster names never do, and the resolver works
// before, during and after the session. The workstation netns has no resolver of its own, so
// the test puts a small one at the address /etc/resolv.conf names.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  OUTSIDE_ADDRESS,
  OUTSIDE_NAME,
  startFakeResolver,
  type FakeResolver,
} from '../../testbed/lib/fake-resolver.ts';
import {
  ensureTestbed,
  inWorkstation,
  telepodInWorkstation,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';

let tb: TestbedStatus;
let resolver: FakeResolver;
let asked: string[];

const telepod = (...args: string[]) => telepodInWorkstation(tb, '-n', 'default', ...args);
const lookup = async (name: string) => {
  const result = await inWorkstation(tb, 'getent', ['ahostsv4', name]);
  return result.code === 0 ? result.stdout.split(/\s+/)[0] : undefined;
};

before(async () => {
  tb = await ensureTestbed();
  await telepod('quit');
  resolver = await startFakeResolver(tb);
  asked = resolver.asked;
});
after(async () => {
  await telepod('quit');
  await resolver?.stop();
});

test('before connecting, the machine resolver answers outside names', async () => {
  assert.equal(await lookup(OUTSIDE_NAME), OUTSIDE_ADDRESS);
});

test('while connected, outside names still come from the machine resolver', async () => {
  const connected = await telepod('connect');
  assert.equal(connected.code, 0, connected.stderr);
  asked.length = 0;
  assert.equal(await lookup(OUTSIDE_NAME), OUTSIDE_ADDRESS);
  assert.ok(asked.includes(OUTSIDE_NAME), `resolver was asked: ${asked.join(', ')}`);
});

test('while connected, cluster names are answered by the cluster and never reach the machine resolver', async () => {
  asked.length = 0;
  assert.equal(await lookup('kubernetes.default'), '10.96.0.1');
  assert.equal(await lookup('kube-dns.kube-system.svc.cluster.local'), '10.96.0.10');
  assert.deepEqual(asked, []);
});

test('after quit, the machine resolver answers as before', async () => {
  assert.equal((await telepod('quit')).code, 0);
  assert.equal(await lookup(OUTSIDE_NAME), OUTSIDE_ADDRESS);
  assert.equal(await lookup('kubernetes.default'), undefined);
});
