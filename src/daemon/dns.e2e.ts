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

/** One A query for OUTSIDE_NAME from a fixed UDP source port: the answer's address, or the error. */
async function queryFromPort(port: number): Promise<string> {
  const script = `
    const dgram = require('dgram'); const packet = require('dns-packet');
    const s = dgram.createSocket('udp4');
    s.on('error', (e) => { console.log(e.code); process.exit(0); });
    s.on('message', (m) => { console.log(packet.decode(m).answers[0]?.data); process.exit(0); });
    setTimeout(() => { console.log('timeout'); process.exit(0); }, 2000);
    s.bind(${port}, () => { s.connect(53, '${resolver.nameserver}', () =>
      s.send(packet.encode({ id: 7, type: 'query', flags: packet.RECURSION_DESIRED,
        questions: [{ type: 'A', name: '${OUTSIDE_NAME}' }] }))); });`;
  return (await inWorkstation(tb, process.execPath, ['-e', script])).stdout.trim();
}

test('a reconnect or quit leaves no stale redirect: a source port used before is answered', async () => {
  // The kernel keeps a UDP flow's NAT for up to two minutes; a client that reuses its source
  // port must reach the new daemon (or, after quit, the resolver), not the old daemon's port.
  const port = 45353;
  assert.equal(await queryFromPort(port), OUTSIDE_ADDRESS);
  assert.equal((await telepod('quit')).code, 0);
  assert.equal((await telepod('connect')).code, 0);
  assert.equal(await queryFromPort(port), OUTSIDE_ADDRESS);
  assert.equal((await telepod('quit')).code, 0);
  assert.equal(await queryFromPort(port), OUTSIDE_ADDRESS);
  assert.equal((await telepod('connect')).code, 0);
});

test('after quit, the machine resolver answers as before', async () => {
  assert.equal((await telepod('quit')).code, 0);
  assert.equal(await lookup(OUTSIDE_NAME), OUTSIDE_ADDRESS);
  assert.equal(await lookup('kubernetes.default'), undefined);
});
