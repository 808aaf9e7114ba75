// Proves the port-forward adapter's framing against a local WebSocket server speaking
// v4.channel.k8s.io: channel bytes are added and removed, the port announcement is dropped even
// when it comes after the first data frame, and error-channel text fails the stream.
import { KubeConfig } from '@kubernetes/client-node';
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { WebSocketServer, type WebSocket } from 'ws';
import { openPortForward } from './portforward.ts';

const PORT = 8081;
const announce = (channel: number) => Buffer.from([channel, PORT & 0xff, PORT >> 8]);
const frame = (channel: number, text: string) => Buffer.concat([Buffer.of(channel), Buffer.from(text)]);

let onConnection: (socket: WebSocket) => void = () => undefined;
const server = new WebSocketServer({ port: 0, host: '127.0.0.1' });
server.on('connection', (socket) => onConnection(socket));
before(() => new Promise<void>((resolve) => server.once('listening', resolve)));
after(() => server.close());

function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [
      {
        name: 'c',
        server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
        skipTLSVerify: true,
      },
    ],
    users: [{ name: 'u' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += (chunk as Buffer).toString();
  return text;
}

test('data in both directions, with the port announced first', async () => {
  onConnection = (socket) => {
    socket.send(announce(0));
    socket.send(announce(1));
    socket.on('message', (msg: Buffer) => {
      assert.equal(msg[0], 0);
      socket.send(frame(0, `echo:${msg.subarray(1).toString()}`));
      socket.close();
    });
  };
  const stream = await openPortForward(kubeConfig(), 'ns', 'pod', PORT);
  stream.write('hello');
  assert.equal(await readAll(stream), 'echo:hello');
});

test('a port announcement arriving after the first data frame is not passed on', async () => {
  onConnection = (socket) => {
    socket.send(frame(0, 'first'));
    socket.send(announce(0));
    socket.send(frame(0, '-second'));
    socket.close();
  };
  const stream = await openPortForward(kubeConfig(), 'ns', 'pod', PORT);
  assert.equal(await readAll(stream), 'first-second');
});

test('text on the error channel fails the stream', async () => {
  onConnection = (socket) => {
    socket.send(announce(0));
    socket.send(announce(1));
    socket.send(frame(1, 'connection refused'));
    socket.close();
  };
  const stream = await openPortForward(kubeConfig(), 'ns', 'pod', PORT);
  await assert.rejects(readAll(stream), /port-forward: connection refused/);
});
