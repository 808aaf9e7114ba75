// A routed client's connection that fails is reset, also when an HTTP/1 router reads it
// through a ParseGate: a cut answer must not reach the client as a complete one.
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { ParseGate } from './parse-gate.ts';
import { failClient } from './route-context.ts';

/** How a client connected to a server that fails its side with `fail` sees its connection end. */
async function clientSees(fail: (socket: net.Socket) => void): Promise<string> {
  const server = net.createServer((socket) => socket.write('partial answer', () => fail(socket)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
    return await new Promise<string>((resolve) => {
      client.on('data', () => undefined);
      client.once('end', () => resolve('end'));
      client.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
  } finally {
    server.close();
  }
}

test('failClient resets a socket, and the socket beneath a ParseGate', async () => {
  assert.equal(await clientSees((socket) => failClient(socket)), 'ECONNRESET');
  assert.equal(await clientSees((socket) => failClient(new ParseGate(socket, () => true))), 'ECONNRESET');
  assert.equal(await clientSees((socket) => new ParseGate(socket, () => true).destroy()), 'end');
});
