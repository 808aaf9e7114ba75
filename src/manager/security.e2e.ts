// e2e on the testbed: the traffic manager as an attacker inside the cluster meets it. A pod in
// another namespace that reaches the manager's Service can do nothing (401 for sessions,
// CONNECT, DNS, intercepts, context, volumes, agent streams; the developer API is not even
// listening on the pod's address); malformed bodies, headers and authorities through a
// port-forward get 4xx and the manager never restarts; forged undo annotations are ignored
// when a manager starts.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { after, before, test } from 'node:test';
import { loadKubeConfig } from '../kube/config.ts';
import { openPortForward } from '../kube/portforward.ts';
import { MANAGER_PATHS, MANAGER_PORT, SESSION_TOKEN_HEADER } from '../protocol/paths.ts';
import { PROTOCOL_VERSION, TELEPOD_VERSION } from '../protocol/version.ts';
import {
  applyManifest,
  createNamespace,
  kubectl,
  nodeServerManifest,
  ON_SIGTERM_EXIT,
  ensureTestbed,
  telepodInWorkstation,
  waitForRollout,
  waitUntil,
  type TestbedStatus,
} from '../../testbed/lib/testbed.ts';

const OUTSIDER_NS = 'telepod-e2e-outsider';
const VICTIM_NS = 'telepod-e2e-victim';
const MANAGER_NS = 'telepod';
const MANAGER_SELECTOR = 'app.kubernetes.io/name=telepod-manager';
let tb: TestbedStatus;
const cleanups: (() => Promise<void>)[] = [];

const telepod = (...args: string[]) => telepodInWorkstation(tb, ...args);

interface ManagerPod {
  name: string;
  ip: string;
  restarts: number;
}

async function managerPod(): Promise<ManagerPod> {
  const pods = JSON.parse(
    await kubectl(tb, ['-n', MANAGER_NS, 'get', 'pods', '-l', MANAGER_SELECTOR, '-o', 'json']),
  ) as {
    items: {
      metadata: { name: string; deletionTimestamp?: string };
      status: { podIP?: string; containerStatuses?: { restartCount: number; ready: boolean }[] };
    }[];
  };
  const live = pods.items.filter(
    (p) => !p.metadata.deletionTimestamp && p.status.containerStatuses?.[0]?.ready,
  );
  assert.equal(live.length, 1, 'one ready manager pod');
  const pod = live[0]!;
  return {
    name: pod.metadata.name,
    ip: pod.status.podIP ?? '',
    restarts: pod.status.containerStatuses![0]!.restartCount,
  };
}

/** Runs `script` with node in the outsider pod; its stdout. */
function fromOutsider(script: string): Promise<string> {
  return kubectl(tb, ['-n', OUTSIDER_NS, 'exec', 'outsider', '--', 'node', '-e', script]);
}

before(async () => {
  tb = await ensureTestbed();
  await telepod('quit');
  cleanups.push(await createNamespace(tb, OUTSIDER_NS), await createNamespace(tb, VICTIM_NS));
  const connected = await telepod('-n', VICTIM_NS, 'connect');
  assert.equal(connected.code, 0, connected.stderr);
  await applyManifest(
    tb,
    `apiVersion: v1
kind: Pod
metadata: { name: outsider, namespace: ${OUTSIDER_NS} }
spec:
  containers: [{ name: app, image: ${tb.images.node}, imagePullPolicy: IfNotPresent, command: [sleep, infinity] }]
---
apiVersion: v1
kind: ConfigMap
metadata: { name: precious, namespace: ${VICTIM_NS} }
data: { a: b }
---
${nodeServerManifest(tb, VICTIM_NS, 'target', `${ON_SIGTERM_EXIT}require('http').createServer((q, s) => s.end('target')).listen(8000)`)}`,
  );
  await kubectl(tb, ['-n', OUTSIDER_NS, 'wait', '--for=condition=Ready', 'pod/outsider', '--timeout=120s']);
  await waitForRollout(tb, VICTIM_NS, 'target');
});

after(async () => {
  await telepod('quit');
  for (const cleanup of cleanups) await cleanup();
});

test('a pod in another namespace can do nothing with the manager', async () => {
  const { ip } = await managerPod();
  const volumes = '3f1f0d2e-5c4b-4a39-9e8f-0a1b2c3d4e5f';
  const script = `
const http2 = require('http2'), net = require('net'), fs = require('fs');
const saToken = fs.readFileSync('/var/run/secrets/kubernetes.io/serviceaccount/token', 'utf8');
const asks = [
  ['POST /sessions', { ':method': 'POST', ':path': '/sessions' }, '{"holder":"mallory@pod"}'],
  ['CONNECT', { ':method': 'CONNECT', ':authority': '10.96.0.1:443' }],
  ['DNS', { ':method': 'POST', ':path': '/dns-query' }, 'x'.repeat(20)],
  ['list', { ':method': 'POST', ':path': '/workloads' }, '{"namespace":"${VICTIM_NS}"}'],
  ['intercept', { ':method': 'POST', ':path': '/intercepts', '${SESSION_TOKEN_HEADER}': 'guess' }, '{}'],
  ['context', { ':method': 'POST', ':path': '/intercepts/context' }, '{"id":"${volumes}"}'],
  ['volumes', { ':method': 'CONNECT', ':authority': 'paired:0', 'x-telepod-volumes': '${volumes}' }],
  ['agent with its own token', { ':method': 'POST', ':path': '/agent/watch', 'x-telepod-injection': '${volumes}', authorization: 'Bearer ' + saToken }, '{"env":{}}'],
  ['agent with a forged token', { ':method': 'CONNECT', ':authority': 'agent:1', 'x-telepod-injection': '${volumes}', 'x-telepod-port': '8000', authorization: 'Bearer a.b.c' }],
];
const session = http2.connect('http://telepod-manager.${MANAGER_NS}:8082');
const results = {};
Promise.all(asks.map(([what, headers, body]) => new Promise((resolve) => {
  const req = session.request(headers, { endStream: false });
  req.on('response', (h) => { results[what] = h[':status']; req.close(); resolve(); });
  req.on('error', (e) => { results[what] = e.code; resolve(); });
  req.end(body);
}))).then(() => new Promise((resolve) => {
  const socket = net.connect(${MANAGER_PORT}, '${ip}');
  socket.on('connect', () => { results.developerApi = 'open'; socket.destroy(); resolve(); });
  socket.on('error', (e) => { results.developerApi = e.code; resolve(); });
})).then(() => { session.close(); process.stdout.write(JSON.stringify(results)); });
`;
  const results = JSON.parse(await fromOutsider(script)) as Record<string, unknown>;
  assert.equal(results.developerApi, 'ECONNREFUSED', 'the developer API listens on loopback only');
  delete results.developerApi;
  for (const [what, status] of Object.entries(results)) assert.equal(status, 401, what);
  assert.equal(Object.keys(results).length, 9);
});

/** An HTTP/2 session with the developer API through a port-forward, as the daemon has. */
async function developerSession(): Promise<http2.ClientHttp2Session> {
  const { kc } = loadKubeConfig({ kubeconfig: tb.kubeconfig });
  const transport = await openPortForward(kc, MANAGER_NS, (await managerPod()).name, MANAGER_PORT);
  return http2.connect('http://telepod-manager', { createConnection: () => transport });
}

async function ask(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: string | Buffer,
): Promise<{ status: number; body: string }> {
  const req = session.request(headers, { endStream: false });
  let status = 0;
  req.on('response', (h) => (status = Number(h[':status'])));
  req.on('error', () => undefined);
  req.end(body);
  let text = '';
  for await (const chunk of req) text += String(chunk);
  return { status, body: text };
}

test('malformed bodies, headers and authorities get 4xx; the manager never restarts', async () => {
  const before = await managerPod();
  const session = await developerSession();
  try {
    const post = (path: string, body: string | Buffer, extra: http2.OutgoingHttpHeaders = {}) =>
      ask(session, { ':method': 'POST', ':path': path, ...extra }, body);
    assert.equal((await post(MANAGER_PATHS.sessions, 'not json')).status, 400);
    assert.equal((await post(MANAGER_PATHS.sessions, Buffer.alloc(3 << 20, 0x7b))).status, 400);
    const grant = await post(
      MANAGER_PATHS.sessions,
      JSON.stringify({ holder: 'fuzz@e2e', version: TELEPOD_VERSION, protocol: PROTOCOL_VERSION }),
    );
    assert.equal(grant.status, 200);
    const withToken = { [SESSION_TOKEN_HEADER]: (JSON.parse(grant.body) as { token: string }).token };
    for (const authority of ['[', ':::', '10.0.0.1:0', 'telepod-manager:8081', `${'9'.repeat(300)}:1`]) {
      const answer = await ask(session, { ':method': 'CONNECT', ':authority': authority, ...withToken });
      assert.equal(answer.status, 400, authority);
    }
    for (const authority of ['127.0.0.1:8081', '169.254.169.254:80']) {
      const answer = await ask(session, { ':method': 'CONNECT', ':authority': authority, ...withToken });
      assert.equal(answer.status, 403, authority);
    }
    const badBodies: [string, string][] = [
      [MANAGER_PATHS.intercepts, '{"mode":"intercept","namespace":"../../api","workload":"x","ports":[]}'],
      [MANAGER_PATHS.intercepts, '{"mode":"bogus"}'],
      [MANAGER_PATHS.intercepts, '[1,2,3'],
      [MANAGER_PATHS.podContext, '{"id":"not-a-uuid"}'],
      [MANAGER_PATHS.leave, 'null'],
      [MANAGER_PATHS.inboundRefused, '{"conn":5}'],
      [MANAGER_PATHS.dnsQuery, 'short'],
    ];
    for (const [path, body] of badBodies) {
      assert.equal((await post(path, body, withToken)).status, 400, `${path} ${body}`);
    }
    const volumes = {
      ':method': 'CONNECT',
      ':authority': 'paired:0',
      'x-telepod-volumes': '[',
      ...withToken,
    };
    assert.equal((await ask(session, volumes)).status, 400);
    const inbound = {
      ':method': 'CONNECT',
      ':authority': 'paired:0',
      'x-telepod-inbound': 'x',
      ...withToken,
    };
    assert.equal((await ask(session, inbound)).status, 400);
  } finally {
    session.close();
  }
  // Garbage that is not HTTP/2 at all, to the agent API, from inside the cluster.
  await fromOutsider(`
const net = require('net');
const socket = net.connect(8082, 'telepod-manager.${MANAGER_NS}', () => socket.end(Buffer.from('PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n' + '\\xff'.repeat(5000), 'latin1')));
socket.on('error', () => undefined);
setTimeout(() => socket.destroy(), 3000);
`);
  const after = await managerPod();
  assert.equal(after.name, before.name);
  assert.equal(after.restarts, before.restarts);
});

test('forged undo annotations are ignored when a manager starts; the objects they name stay', async () => {
  const outsiderPath = (resource: string, name: string) =>
    `/apis/apps/v1/namespaces/${OUTSIDER_NS}/${resource}/${name}`;
  // One record is well-formed but unsigned; one is "signed" with a guess and reaches into
  // another namespace; both would delete the victim's ConfigMap.
  await applyManifest(
    tb,
    nodeServerManifest(
      tb,
      OUTSIDER_NS,
      'forger',
      `${ON_SIGTERM_EXIT}require('http').createServer((q, s) => s.end('f')).listen(8000)`,
    ),
  );
  const precious = `/api/v1/namespaces/${VICTIM_NS}/configmaps/precious`;
  const targetTemplate = await kubectl(tb, [
    '-n',
    VICTIM_NS,
    'get',
    'deploy',
    'target',
    '-o',
    'jsonpath={.spec.template}',
  ]);
  const forged = [
    {
      ns: OUTSIDER_NS,
      name: 'forger',
      undo: { workload: outsiderPath('deployments', 'forger'), services: [], deletes: [precious] },
      mac: 'AAAA',
    },
    {
      ns: VICTIM_NS,
      name: 'target',
      undo: {
        workload: `/apis/apps/v1/namespaces/${VICTIM_NS}/deployments/target`,
        template: { spec: { containers: [{ name: 'evil', image: 'evil' }] } },
        services: [],
        deletes: [precious],
      },
    },
  ];
  for (const { ns, name, undo, mac } of forged) {
    const annotations = [
      `telepod.io/undo=${JSON.stringify(undo)}`,
      ...(mac ? [`telepod.io/undo-mac=${mac}`] : []),
    ];
    await kubectl(tb, ['-n', ns, 'annotate', 'deploy', name, '--overwrite', ...annotations]);
  }
  const old = await managerPod();
  await kubectl(tb, ['-n', MANAGER_NS, 'delete', 'pod', old.name, '--wait=false']);
  let log = '';
  await waitUntil('a new manager to log the forged records', 120_000, async () => {
    const pod = await managerPod().catch(() => undefined);
    if (!pod || pod.name === old.name) return false;
    log = await kubectl(tb, ['-n', MANAGER_NS, 'logs', pod.name]);
    return log.includes('agents on');
  });
  assert.match(
    log,
    new RegExp(
      `ignoring the undo record on /apis/apps/v1/namespaces/${OUTSIDER_NS}/deployments/forger: not signed`,
    ),
  );
  assert.match(
    log,
    new RegExp(
      `ignoring the undo record on /apis/apps/v1/namespaces/${VICTIM_NS}/deployments/target: not signed`,
    ),
  );
  assert.equal(
    (await kubectl(tb, ['-n', VICTIM_NS, 'get', 'configmap', 'precious', '-o', 'name'])).trim(),
    'configmap/precious',
  );
  assert.equal(
    await kubectl(tb, ['-n', VICTIM_NS, 'get', 'deploy', 'target', '-o', 'jsonpath={.spec.template}']),
    targetTemplate,
  );
});
