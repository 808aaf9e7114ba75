// Proves the relays of a cold intercept end to end on loopback: a TCP connection a relay accepts
// is announced on the session's event stream, and the daemon's stream for it (a stand-in that
// answers in capitals) is spliced to it both ways, ends included; a refused one and one for a
// session without an event stream are reset; a closed relay accepts nothing more; one that
// cannot listen is logged and not opened.
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { after, before, test } from 'node:test';
import type { InboundEvent } from '../protocol/intercept.ts';
import { Inbound } from './inbound.ts';
import type { Intercepts } from './intercepts.ts';
import { Relays, type RelayRoute } from './relay.ts';

const SESSION = 'session-1';
let server: http2.Http2Server;
let daemon: http2.ClientHttp2Session;
let inbound: Inbound;
/** What the stand-in daemon does with the next announced connection. */
let answer: 'capitals' | 'refuse' | 'reset' = 'capitals';

before(async () => {
  inbound = new Inbound({} as Intercepts);
  server = http2.createServer((_req, _res) => undefined);
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    if (headers[':path'] === '/events') inbound.events(stream, SESSION);
    else inbound.daemonConnect(stream, SESSION, String(headers['x-conn']));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  daemon = http2.connect(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`);
  const events = daemon.request({ ':path': '/events' });
  createInterface({ input: events }).on('line', (line) => {
    const event = JSON.parse(line) as InboundEvent;
    if (answer === 'refuse') return inbound.refused(SESSION, event.conn, 'nothing listens');
    const stream = daemon.request({ ':path': '/conn', ':method': 'POST', 'x-conn': event.conn });
    stream.on('error', () => undefined);
    if (answer === 'reset') return void stream.on('data', () => stream.close(http2.constants.NGHTTP2_CANCEL));
    stream.on('data', (chunk: Buffer) => stream.write(chunk.toString().toUpperCase()));
    stream.on('end', () => stream.end(`|${event.local}`));
  });
  await new Promise((resolve) => events.once('response', resolve));
});

after(() => {
  daemon.destroy();
  server.close();
});

/** Relays on loopback whose connections go to the test's Inbound; what they log goes to `logged`. */
function loopbackRelays(address = '127.0.0.1'): Relays {
  return new Relays(address, {
    handler: (socket, route) => inbound.relayConnect(socket, route),
    log: (message) => logged.push(message),
  });
}
const logged: string[] = [];

/** The port of a relay for `route`, which must open. */
async function opened(relays: Relays, route: RelayRoute): Promise<number> {
  const port = await relays.open(route);
  assert.ok(port, 'the relay listens');
  return port;
}

/** Connects to `port`, sends `text` and ends; resolves to what came back, or the error's code. */
function exchange(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const socket = net.connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => socket.end(text));
    socket.on('data', (chunk: Buffer) => (got += chunk.toString()));
    socket.on('end', () => resolve(got));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve(`error ${err.code}`));
  });
}

// First, while no other test's connection may still be closing: it counts the TCP sockets.
test("a stream the daemon resets mid-connection ends the client's connection and frees the relay's socket", async () => {
  const socketsBefore = tcpSockets();
  const relays = loopbackRelays();
  answer = 'reset';
  const port = await opened(relays, { sessionId: SESSION, interceptId: 'i6', local: 8000 });
  const client = net.connect({ host: '127.0.0.1', port }, () => client.write('hello'));
  client.on('error', () => undefined);
  await new Promise((resolve) => client.once('close', resolve));
  answer = 'capitals';
  await relays.close(0);
  // Its handle is gone too: a reset of a socket already ended once failed and kept it forever.
  const deadline = Date.now() + 5000;
  while (tcpSockets() > socketsBefore) {
    assert.ok(Date.now() < deadline, 'no TCP socket left over after 5 s');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
});

test('a relayed connection reaches the daemon and comes back, both ends included', async () => {
  const relays = loopbackRelays();
  const port = await opened(relays, { sessionId: SESSION, interceptId: 'i1', local: 8000 });
  assert.equal(await exchange(port, 'hello'), 'HELLO|8000');
  assert.equal(await exchange(port, 'again'), 'AGAIN|8000');
  await relays.close(0);
  assert.equal(await exchange(port, 'closed'), 'error ECONNREFUSED');
});

test('a connection the daemon refuses, or of a session without an event stream, is reset', async () => {
  const relays = loopbackRelays();
  answer = 'refuse';
  const port = await opened(relays, { sessionId: SESSION, interceptId: 'i2', local: 8000 });
  assert.equal(await exchange(port, 'hello'), 'error ECONNRESET');
  answer = 'capitals';
  const other = await opened(relays, { sessionId: 'no-such-session', interceptId: 'i3', local: 8000 });
  assert.equal(await exchange(other, 'hello'), 'error ECONNRESET');
  await relays.close(0);
});

test('a relay closed with a linger still accepts until the linger ends', async () => {
  const relays = loopbackRelays();
  const port = await opened(relays, { sessionId: SESSION, interceptId: 'i4', local: 8001 });
  const closing = relays.close(300);
  assert.equal(await exchange(port, 'still'), 'STILL|8001');
  const deadline = Date.now() + 5000;
  while ((await exchange(port, 'x')) !== 'error ECONNREFUSED') {
    assert.ok(Date.now() < deadline, 'closed within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await closing;
});

test('a relay that cannot listen is logged and not opened', async () => {
  const relays = loopbackRelays('192.0.2.1'); // TEST-NET-1: not an address of this machine
  assert.equal(await relays.open({ sessionId: SESSION, interceptId: 'i5', local: 8000 }), undefined);
  assert.match(logged.at(-1) ?? '', /^cannot relay on 192\.0\.2\.1: .*EADDRNOTAVAIL/);
  await relays.close(0);
});

function tcpSockets(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}
