// Proves the handover: once a port is intercepted, a kept-alive app connection is closed right
// after the app answered and the client went quiet, while one that keeps moving data stays.
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { test } from 'node:test';
import { HandedConnections } from './handed-connections.ts';

/** A client ↔ app pair over loopback: `client` and `app` are the agent's two ends. */
async function pair() {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const app = net.connect(port, '127.0.0.1');
  const [client] = await accepted;
  server.close();
  return { client, app };
}

const REQUEST = 'GET / HTTP/1.1\r\nhost: web\r\n\r\n';
const ANSWER = 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok';

test('an HTTP/1 connection idle after an answer is closed; a busy one, an event stream and other protocols stay', async () => {
  const connections = new HandedConnections();
  const [idle, busy, events, other] = await Promise.all([pair(), pair(), pair(), pair()]);
  // `app.write` reaches the agent's client side (the client spoke), `client.write` its app side.
  for (const [c, request, answer] of [
    [idle, REQUEST, ANSWER],
    [busy, REQUEST, ANSWER],
    [events, REQUEST, 'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\ndata: 1\n\n'],
    [other, '\u0000\u0000\u0000\u0008postgres', 'R\u0000\u0000\u0000\u0008'],
  ] as const) {
    connections.add(19000, c.client, c.app);
    c.app.write(request);
    await once(c.client, 'data');
    c.client.write(answer);
    await once(c.app, 'data');
  }
  const chatter = setInterval(() => busy.app.write(REQUEST), 5);
  connections.handOver(19000);
  await once(idle.client, 'end');
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (const c of [busy, events, other]) assert.equal(c.client.readyState, 'open');
  clearInterval(chatter);
  connections.stop(19000);
  for (const c of [idle, busy, events, other]) for (const socket of [c.client, c.app]) socket.destroy();
});
