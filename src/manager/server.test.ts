// Proves the manager's endpoints: the developer API answers health and version, refuses
// anonymous streams, and answers malformed bodies, headers and authorities with a 4xx for that
// stream alone; the agent API serves nothing to a caller without an agent's credential.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { AGENT_INJECTION_HEADER, VOLUMES_HEADER } from '../protocol/intercept.ts';
import { MANAGER_PATHS, SESSION_TOKEN_HEADER } from '../protocol/paths.ts';
import { PROTOCOL_VERSION, TELEPOD_VERSION } from '../protocol/version.ts';
import { createManagerServers } from './server.ts';

const { developer, agents } = createManagerServers({ dnsServer: '127.0.0.1' });
let dev: http2.ClientHttp2Session;
let agent: http2.ClientHttp2Session;

async function open(server: http2.Http2Server): Promise<http2.ClientHttp2Session> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
}

before(async () => {
  dev = await open(developer);
  agent = await open(agents);
});
after(() => {
  dev.close();
  agent.close();
  developer.close();
  agents.close();
});

async function call(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: string,
): Promise<{ status: number; body: string }> {
  const req = session.request(headers, { endStream: false });
  let status = 0;
  req.on('response', (h) => (status = Number(h[':status'])));
  req.setEncoding('utf8');
  req.end(body);
  let text = '';
  for await (const chunk of req) text += chunk as string;
  return { status, body: text };
}

const post = (path: string, body: string, extra: http2.OutgoingHttpHeaders = {}) =>
  call(dev, { ':method': 'POST', ':path': path, ...extra }, body);

async function openSession(): Promise<string> {
  const { status, body } = await post(
    MANAGER_PATHS.sessions,
    JSON.stringify({ holder: 'dev@test', version: TELEPOD_VERSION, protocol: PROTOCOL_VERSION }),
  );
  assert.equal(status, 200);
  return (JSON.parse(body) as { token: string }).token;
}

test('health answers ok', async () => {
  assert.deepEqual(await call(dev, { ':path': MANAGER_PATHS.health }), { status: 200, body: 'ok\n' });
});

test('version reports package and protocol versions', async () => {
  const { status, body } = await call(dev, { ':path': MANAGER_PATHS.version });
  assert.equal(status, 200);
  assert.deepEqual(JSON.parse(body), { version: TELEPOD_VERSION, protocol: PROTOCOL_VERSION });
});

test('unknown paths get 404', async () => {
  assert.equal((await call(dev, { ':path': '/nope' })).status, 404);
});

test('a daemon of another protocol is refused with 409 and told what to run', async () => {
  const older = await post(
    MANAGER_PATHS.sessions,
    JSON.stringify({ holder: 'dev@test', version: '0.0.1', protocol: 1 }),
  );
  assert.equal(older.status, 409);
  assert.match(
    older.body,
    /this telepod 0\.0\.1 \(protocol 1\) is older than the traffic manager.*upgrade telepod to/,
  );
  const unversioned = await post(MANAGER_PATHS.sessions, JSON.stringify({ holder: 'dev@test' }));
  assert.equal(unversioned.status, 409);
  const newer = await post(
    MANAGER_PATHS.sessions,
    JSON.stringify({ holder: 'dev@test', version: '9.0.0', protocol: PROTOCOL_VERSION + 1 }),
  );
  assert.equal(newer.status, 409);
  assert.match(newer.body, /older than this telepod 9\.0\.0.*telepod install`/);
});

test('a session request that is not JSON, or lacks its fields, is a 400 and the server goes on', async () => {
  for (const body of ['not json', '{"holder": 5}', '[]', `{"holder": "${'x'.repeat(300)}"}`]) {
    const answer = await post(MANAGER_PATHS.sessions, body);
    assert.equal(answer.status, 400, body);
    assert.match(answer.body, /invalid session request/);
  }
  assert.equal((await post(MANAGER_PATHS.sessions, 'x'.repeat(2 << 20))).status, 400);
  await openSession();
});

test('CONNECT and DNS without a session are 401', async () => {
  assert.equal((await call(dev, { ':method': 'CONNECT', ':authority': '10.0.0.1:80' })).status, 401);
  assert.equal((await post(MANAGER_PATHS.dnsQuery, 'abc')).status, 401);
  assert.equal((await post(MANAGER_PATHS.lease, '', { [SESSION_TOKEN_HEADER]: 'forged' })).status, 401);
});

test('a CONNECT authority that is not ip:port is a 400; loopback and link-local are 403', async () => {
  const token = await openSession();
  const connect = (authority: string) =>
    call(dev, { ':method': 'CONNECT', ':authority': authority, [SESSION_TOKEN_HEADER]: token });
  for (const authority of ['[', ':::', '10.0.0.1:99999', 'example.com:80', '10.0.0.1', '[::1:80']) {
    assert.equal((await connect(authority)).status, 400, authority);
  }
  for (const authority of ['127.0.0.1:8081', '[::1]:8081', '169.254.169.254:80', '[::ffff:127.0.0.1]:80']) {
    assert.equal((await connect(authority)).status, 403, authority);
  }
});

test('session requests with malformed bodies or ids are 400, not a crash', async () => {
  const token = await openSession();
  const withToken = { [SESSION_TOKEN_HEADER]: token };
  assert.equal((await post(MANAGER_PATHS.dnsQuery, 'short', withToken)).status, 400);
  const badVolumes = {
    ':method': 'CONNECT',
    ':authority': 'paired:0',
    [VOLUMES_HEADER]: '../x',
    ...withToken,
  };
  // Without the Kubernetes API the manager has no intercepts: 404 before the id is looked at.
  assert.equal((await call(dev, badVolumes)).status, 404);
  assert.equal((await call(dev, { ':path': '/nope', ...withToken })).status, 404);
  assert.equal((await call(dev, { ':path': '/health' })).status, 404);
});

test('the agent API serves nothing without an agent credential', async () => {
  for (const headers of [
    { ':method': 'POST', ':path': MANAGER_PATHS.sessions },
    {
      ':method': 'POST',
      ':path': MANAGER_PATHS.agentWatch,
      [AGENT_INJECTION_HEADER]: 'forged',
      authorization: 'Bearer x.y.z',
    },
    { ':method': 'CONNECT', ':authority': '10.0.0.1:80' },
    { ':method': 'GET', ':path': MANAGER_PATHS.health },
  ]) {
    assert.equal((await call(agent, headers, '{}')).status, 401, JSON.stringify(headers));
  }
});
