// Unit test of the agent's drain on SIGTERM, with real listeners: new connections are served
// for the serving time, refused after it, and the agent leaves once its last connection ended
// (or at the limit, with one that never ends).
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';
import { drain } from './termination.ts';

const listening = async () => {
  const server = net.createServer((socket) => socket.on('data', (d) => socket.write(d)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as net.AddressInfo).port };
};
const connect = (port: number) =>
  new Promise<net.Socket>((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
const echo = (socket: net.Socket) =>
  new Promise<string>((resolve) => {
    socket.once('data', (d) => resolve(d.toString()));
    socket.write('ping');
  });

test('serves during the serving time, then refuses, and leaves when the last connection ends', async () => {
  const { server, port } = await listening();
  const held = await connect(port);
  let exitedAt = 0;
  const started = Date.now();
  drain(
    () => [server],
    () => (exitedAt = Date.now()),
    { serveMs: 300, maxMs: 5_000 },
  );
  const during = await connect(port); // accepted while draining
  assert.equal(await echo(during), 'ping');
  during.destroy();
  await new Promise((resolve) => setTimeout(resolve, 400));
  await assert.rejects(connect(port), /ECONNREFUSED/);
  assert.equal(exitedAt, 0, 'an open connection keeps the agent');
  assert.equal(await echo(held), 'ping', 'and it is still served');
  held.destroy();
  await new Promise((resolve) => server.once('close', resolve));
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(exitedAt >= started + 300, 'left after its connections ended');
});

test('a connection that never ends does not keep the agent past the limit', async () => {
  const { server, port } = await listening();
  const held = await connect(port);
  const exited = new Promise<number>((resolve) =>
    drain(
      () => [server],
      () => resolve(Date.now()),
      { serveMs: 50, maxMs: 300 },
    ),
  );
  const started = Date.now();
  const at = await exited;
  assert.ok(at - started >= 250, `left at the limit (${at - started} ms)`);
  held.destroy();
  server.close();
});
