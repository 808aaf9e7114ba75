// e2e on the testbed: two developers, each on a workstation netns of their own with their own
// daemon, hold personal intercepts of the same port with different header values. Requests
// over one kept-alive HTTP/1.1 connection, h2c streams, gRPC calls and a WebSocket from the
// cluster reach the right workstation by header, the rest reach the app; a whole-port intercept
// is refused naming them; one leaving keeps the other's; mirroring copies requests while the
// app answers, also with the workstation frozen.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import {
  applyManifest,
  createNamespace,
  ensureTestbed,
  kubectl,
  ON_SIGTERM_EXIT,
  secondWorkstation,
  telepodWithEnv,
  waitForRollout,
  waitUntil,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';

const NS = 'telepod-e2e-personal';
const FIXTURE = fileURLToPath(new URL('./routed-peers.fixture.ts', import.meta.url));
const TSX = ['--import', 'tsx'];
let tb: TestbedStatus;
let deleteNamespace: () => Promise<void>;
const servers: ChildProcess[] = [];

interface Developer {
  name: string;
  tb: TestbedStatus;
  env: Record<string, string>;
  log: string;
  server?: ChildProcess;
}
let alice: Developer;
let bob: Developer;

const telepod = (dev: Developer, ...args: string[]) => telepodWithEnv(dev.tb, dev.env, '-n', NS, ...args);

async function telepodOk(dev: Developer, ...args: string[]) {
  const result = await telepod(dev, ...args);
  assert.equal(result.code, 0, result.stderr);
  return result;
}

/** The app: HTTP/1.1 on 8000, h2c on 9000 (plain streams, and gRPC framed by hand). */
const APP = `${ON_SIGTERM_EXIT}
const http = require('http'), h2 = require('http2');
http.createServer((q, s) => { q.resume(); q.on('end', () => s.end('app:' + q.url)); }).listen(8000);
h2.createServer().on('stream', (st, h) => {
  st.resume();
  st.on('end', () => {
    if (!String(h['content-type']).startsWith('application/grpc')) {
      st.respond({ ':status': 200 });
      return st.end('app:' + h[':path']);
    }
    st.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    st.on('wantTrailers', () => st.sendTrailers({ 'grpc-status': '0' }));
    const m = Buffer.from('app:hi'), f = Buffer.alloc(5);
    f.writeUInt32BE(m.length, 1);
    st.end(Buffer.concat([f, m]));
  });
}).listen(9000);`;

function appManifest(): string {
  const labels = '{ app: echo }';
  return `apiVersion: apps/v1
kind: Deployment
metadata: { name: echo, namespace: ${NS} }
spec:
  selector: { matchLabels: ${labels} }
  template:
    metadata: { labels: ${labels} }
    spec:
      containers:
        - name: echo
          image: ${tb.images.node}
          imagePullPolicy: IfNotPresent
          command: [node, -e, ${JSON.stringify(APP)}]
          ports: [{ name: http, containerPort: 8000 }, { name: grpc, containerPort: 9000 }]
          readinessProbe: { tcpSocket: { port: 8000 }, periodSeconds: 1 }
---
apiVersion: v1
kind: Service
metadata: { name: echo, namespace: ${NS} }
spec:
  selector: ${labels}
  ports: [{ name: http, port: 8000, targetPort: http }, { name: grpc, port: 9000, targetPort: grpc }]
`;
}

/** A developer's local servers (HTTP/1.1 + WebSocket on 8001, gRPC on 9001) in their netns. */
async function startServers(dev: Developer): Promise<void> {
  await rm(dev.log, { force: true });
  const child = spawn(
    'nsenter',
    [
      `--net=/run/netns/${dev.tb.workstation.netns}`,
      '--',
      process.execPath,
      ...TSX,
      FIXTURE,
      'serve',
      dev.name,
      '8001',
      '9001',
      dev.log,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  servers.push(child);
  dev.server = child;
  await new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', () => resolve());
    child.once('exit', (code) => reject(new Error(`${dev.name}'s servers exited (${code})`)));
  });
}

async function snapshot(): Promise<unknown[]> {
  return Promise.all(
    ['deploy', 'svc'].map(async (kind) => {
      const object = JSON.parse(await kubectl(tb, ['-n', NS, 'get', kind, 'echo', '-o', 'json'])) as {
        spec: unknown;
        metadata: { annotations?: Record<string, string> };
      };
      const annotations = { ...object.metadata.annotations };
      delete annotations['deployment.kubernetes.io/revision'];
      return { spec: object.spec, annotations };
    }),
  );
}

/** The workload's pods that are not terminating. */
async function podNames(): Promise<string[]> {
  const list = JSON.parse(await kubectl(tb, ['-n', NS, 'get', 'pods', '-l', 'app=echo', '-o', 'json'])) as {
    items: { metadata: { name: string; deletionTimestamp?: string } }[];
  };
  return list.items.filter((pod) => !pod.metadata.deletionTimestamp).map((pod) => pod.metadata.name);
}

/** Ends whatever a failed test left, so that the next one starts from the original workload. */
async function leaveAll(): Promise<void> {
  await Promise.all([
    telepod(alice, 'leave', 'echo', '--restore'),
    telepod(bob, 'leave', 'echo', '--restore'),
  ]);
}

interface ClientResults {
  http1: { dev?: string; body: string; socket: number }[];
  h2: { dev?: string; body: string }[];
  grpc: { dev?: string; body: string }[];
  ws: string;
}

/** The cluster's clients, from the node netns, against the Service's ClusterIP. */
async function fromCluster(command: 'clients' | 'mirror'): Promise<ClientResults & { mirror: string[] }> {
  const ip = (await kubectl(tb, ['-n', NS, 'get', 'svc', 'echo', '-o', 'jsonpath={.spec.clusterIP}'])).trim();
  const child = spawn(
    'nsenter',
    ['--net=/run/netns/tpbed-node', '--', process.execPath, ...TSX, FIXTURE, command, ip, '8000', '9000'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  assert.equal(code, 0, `the cluster clients failed: ${out}`);
  return JSON.parse(out) as ClientResults & { mirror: string[] };
}

/** Who answered each request: the developer whose header it carried, or the app. */
function assertRouted(results: ClientResults, holders: string[]): void {
  const expected = (dev: string | undefined) => (dev && holders.includes(dev) ? dev : 'app');
  for (const r of results.http1) assert.equal(r.body, `${expected(r.dev)}:/h1/${r.dev ?? 'none'}`);
  assert.equal(new Set(results.http1.map((r) => r.socket)).size, 1, 'one kept-alive client connection');
  for (const r of results.h2) assert.equal(r.body, `${expected(r.dev)}:/h2/${r.dev ?? 'none'}`);
  for (const r of results.grpc) assert.equal(r.body, `${expected(r.dev)}:hi`);
  assert.equal(results.ws, `${expected('alice')}:ping`);
}

async function logged(
  dev: Developer,
): Promise<{ proto: string; url?: string; dev?: string; body?: string }[]> {
  const text = await readFile(dev.log, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { proto: string; url?: string; dev?: string; body?: string });
}

before(async () => {
  tb = await ensureTestbed();
  alice = { name: 'alice', tb, env: {}, log: `/tmp/telepod-e2e-alice-${process.pid}.log` };
  bob = {
    name: 'bob',
    tb: secondWorkstation(tb),
    env: { TELEPOD_RUN_DIR: '/run/telepod-e2e-bob' },
    log: `/tmp/telepod-e2e-bob-${process.pid}.log`,
  };
  await Promise.all([telepod(alice, 'quit'), telepod(bob, 'quit')]);
  deleteNamespace = await createNamespace(tb, NS);
  await applyManifest(tb, appManifest());
  await waitForRollout(tb, NS, 'echo');
  await Promise.all([startServers(alice), startServers(bob)]);
});

after(async () => {
  for (const server of servers) {
    server.kill('SIGCONT');
    server.kill();
  }
  await Promise.all([telepod(alice, 'quit'), telepod(bob, 'quit')]);
  await deleteNamespace?.();
  await Promise.all([rm(alice.log, { force: true }), rm(bob.log, { force: true })]);
  await rm(bob.env.TELEPOD_RUN_DIR!, { recursive: true, force: true }); // the second daemon's folder
});

test('two developers hold personal intercepts of one port: each gets their requests, the app the rest', async (t) => {
  const original = await snapshot();
  const ports = ['--port', '8001:http', '--port', '9001:grpc'];
  t.after(leaveAll);
  const first = await telepodOk(alice, 'intercept', 'echo', ...ports, '--http-header', 'x-dev=alice');
  assert.match(first.stdout, new RegExp(`curl -H 'x-dev: alice' http://echo\\.${NS}:8000/`));
  const pods = await podNames();
  await telepodOk(bob, 'intercept', 'echo', ...ports, '--http-header', 'X-Dev=bob');
  assert.deepEqual(await podNames(), pods, "the second developer's intercept needs no rollout");

  await waitUntil('the agent to route by header', 15_000, async () => {
    const results = await fromCluster('clients');
    return results.http1.every((r) => r.body.startsWith(r.dev ?? 'app'));
  });
  assertRouted(await fromCluster('clients'), ['alice', 'bob']);

  const list = await telepodOk(alice, 'list');
  assert.match(list.stdout, /requests with x-dev=alice\) by .*requests with x-dev=bob\) by /);

  const whole = await telepod(alice, 'intercept', 'echo', '--port', '8002:http');
  assert.notEqual(whole.code, 0);
  assert.match(whole.stderr, /personal intercepts or mirrors of .*\(x-dev=alice\), .*\(x-dev=bob\)/);

  await telepodOk(bob, 'leave', 'echo', '--restore');
  assertRouted(await fromCluster('clients'), ['alice']);
  await telepodOk(alice, 'leave', 'echo', '--restore');
  assert.deepEqual(await snapshot(), original);
});

test('a mirror gets a copy of every request while the app answers, even with the workstation frozen', async (t) => {
  const original = await snapshot();
  t.after(leaveAll);
  const mirror = await telepodOk(alice, 'intercept', 'echo', '--port', '8001:http', '--mirror');
  assert.match(mirror.stdout, /mirrored: curl http:\/\/echo\./);
  await waitUntil('a copy to reach the workstation', 15_000, async () => {
    const results = await fromCluster('mirror');
    assert.deepEqual(results.mirror, ['app:/m/0', 'app:/m/1', 'app:/m/2']);
    return (await logged(alice)).some((entry) => entry.url === '/m/2');
  });
  const copies = (await logged(alice)).filter((entry) => entry.url?.startsWith('/m/'));
  assert.ok(copies.every((entry) => entry.proto === 'http1' && entry.body === `body of ${entry.url}`));

  alice.server!.kill('SIGSTOP'); // accepts nothing more, answers nothing
  try {
    for (let i = 0; i < 3; i++) {
      assert.deepEqual((await fromCluster('mirror')).mirror, ['app:/m/0', 'app:/m/1', 'app:/m/2']);
    }
  } finally {
    alice.server!.kill('SIGCONT');
  }
  await telepodOk(alice, 'leave', 'echo', '--restore');
  assert.deepEqual(await snapshot(), original);
});
