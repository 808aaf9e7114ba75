// A connection the agent sends to the workstation while the intercept ends: the manager answers
// 404 and the app serves it — the client gets the app's answer, not a reset.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ConnectionRoutes } from './connection-routes.ts';

const listen = async (server: net.Server | http2.Http2Server): Promise<number> => {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
};

/** What a client of the agent's port receives, or how its connection failed. */
function exchange(port: number): Promise<string> {
  return new Promise((resolve) => {
    const client = net.connect(port, '127.0.0.1', () => client.end('hello'));
    let received = '';
    client.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    client.once('end', () => resolve(received));
    client.once('error', (err: NodeJS.ErrnoException) => resolve(`failed: ${err.code}`));
  });
}

/**
 * What a client of the agent's port gets when the manager answers `managerStatus`; `closing`: the
 * agent's session to the manager is closing (a GOAWAY), with a stream still open on it.
 */
async function throughRoutes(managerStatus: number, closing = false): Promise<string> {
  // The app answers only once the agent's stream to the manager has closed: a connection reset
  // when that stream closed is reset by then.
  let agentStreamClosed!: () => void;
  const streamClosed = new Promise<void>((resolve) => (agentStreamClosed = resolve));
  const app = net.createServer({ allowHalfOpen: true }, (socket) =>
    socket.resume().once('end', () => void streamClosed.then(() => socket.end('from the app'))),
  );
  const manager = http2.createServer();
  manager.on('stream', (stream, headers) => {
    if (headers[':path'] === '/held') return void stream.respond();
    stream.respond({ ':status': managerStatus });
    stream.end('not intercepted\n');
  });
  const appPort = await listen(app);
  const session = http2.connect(`http://127.0.0.1:${await listen(manager)}`);
  const request = session.request.bind(session);
  session.request = (...args: Parameters<typeof request>) => {
    const stream = request(...args);
    stream.once('close', agentStreamClosed);
    return stream;
  };
  if (closing) {
    const held = session.request({ ':path': '/held' });
    await new Promise((resolve) => held.once('response', resolve));
    session.close();
    agentStreamClosed(); // no stream to the manager is opened
  }
  const routes = new ConnectionRoutes(
    () => session,
    () => ({}),
  );
  const agent = net.createServer({ allowHalfOpen: true }, (socket) =>
    routes.toWorkstation(socket, { listen: 8000, forward: appPort }),
  );
  try {
    return await exchange(await listen(agent));
  } finally {
    session.destroy();
    for (const server of [agent, app, manager]) server.close();
  }
}

test('a connection the manager no longer takes (404) is served by the app, not reset', async () => {
  assert.equal(await throughRoutes(404), 'from the app');
});

test('a connection for a workload being restored (401: the injection is forgotten) is served by the app', async () => {
  assert.equal(await throughRoutes(401), 'from the app');
});

test('a connection that arrives while the session to the manager closes is served by the app', async () => {
  assert.equal(await throughRoutes(200, true), 'from the app');
});

test('a connection the manager refuses otherwise is reset', async () => {
  assert.equal(await throughRoutes(502), 'failed: ECONNRESET');
});
