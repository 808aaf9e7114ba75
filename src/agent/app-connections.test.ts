// Proves the handover: once a port is intercepted, a kept-alive app connection is closed right
// after the app answered and the client went quiet, while one that keeps moving data stays.
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { test } from 'node:test';
import { AppConnections } from './app-connections.ts';

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

test('an app connection idle after an answer is closed; a busy one stays', async () => {
  const connections = new AppConnections();
  const idle = await pair();
  const busy = await pair();
  connections.add(19000, idle.client, idle.app);
  connections.add(19000, busy.client, busy.app);
  idle.app.write('request');
  idle.client.write('answer'); // the app's answer, as the agent's client side sees it
  const chatter = setInterval(() => busy.app.write('more'), 5);
  connections.handOver(19000);
  await once(idle.client, 'end');
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(busy.client.readyState, 'open');
  clearInterval(chatter);
  connections.stop(19000);
  for (const socket of [idle.client, idle.app, busy.client, busy.app]) socket.destroy();
});
