// e2e on the testbed: with telepod connected, names outside the cluster still go to the
// machine's own resolver (and only there), cluster names never do, and the resolver works
// before, during and after the session. The workstation netns has no resolver of its own, so
// the test puts a small one at the address /etc/resolv.conf names.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import {
  ensureTestbed,
  inWorkstation,
  telepodInWorkstation,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const NAMESERVER = /^nameserver\s+(\d+\.\d+\.\d+\.\d+)/m.exec(readFileSync('/etc/resolv.conf', 'utf8'))?.[1];
const OUTSIDE_NAME = 'www.telepod-e2e.test';
const OUTSIDE_ADDRESS = '192.0.2.10';

// Answers A queries for *.telepod-e2e.test, NXDOMAIN otherwise; prints every name it is asked.
const FAKE_RESOLVER = `
const dgram = require('dgram'); const packet = require('dns-packet');
const s = dgram.createSocket('udp4');
s.on('message', (m, from) => {
  const q = packet.decode(m); const name = q.questions[0].name; const type = q.questions[0].type;
  console.log(name);
  const ours = name.endsWith('telepod-e2e.test');
  s.send(packet.encode({ id: q.id, type: 'response', flags: packet.RECURSION_AVAILABLE, rcode: ours ? 'NOERROR' : 'NXDOMAIN',
    questions: q.questions, answers: ours && type === 'A' ? [{ name, type: 'A', ttl: 1, data: '${OUTSIDE_ADDRESS}' }] : [] }),
    from.port, from.address);
});
s.bind(53, process.argv[1], () => console.log('ready'));
`;

let tb: TestbedStatus;
let resolver: ChildProcess;
const asked: string[] = [];

const telepod = (...args: string[]) => telepodInWorkstation(tb, '-n', 'default', ...args);
const lookup = async (name: string) => {
  const result = await inWorkstation(tb, 'getent', ['ahostsv4', name]);
  return result.code === 0 ? result.stdout.split(/\s+/)[0] : undefined;
};

before(async () => {
  assert.ok(NAMESERVER, '/etc/resolv.conf names no IPv4 nameserver');
  tb = await ensureTestbed();
  await telepod('quit');
  await inWorkstation(tb, 'ip', ['addr', 'add', `${NAMESERVER}/32`, 'dev', 'lo']);
  resolver = spawn(
    'nsenter',
    [`--net=/run/netns/${tb.workstation.netns}`, '--', process.execPath, '-e', FAKE_RESOLVER, NAMESERVER],
    {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise<void>((resolve) => {
    resolver.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n').filter(Boolean)) {
        if (line === 'ready') resolve();
        else asked.push(line);
      }
    });
  });
});
after(async () => {
  await telepod('quit');
  resolver?.kill();
  await inWorkstation(tb, 'ip', ['addr', 'del', `${NAMESERVER}/32`, 'dev', 'lo']);
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
