// A connection carried straight to a pod: the pod's answer reaches the client and the client's
// half-close is held back; a stream that fails before the pod answered hands the connection and
// what the client sent to the fallback; one that fails after an answer resets the client.
import assert from 'node:assert/strict';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { relayThroughPod, type Unsent } from './pod-relay.ts';

/** A pod stream: what the relay writes is collected; the test pushes the pod's side. */
class FakePodStream extends Duplex {
  readonly received: Buffer[] = [];
  endedByRelay = false;
  onWrite: (() => void) | undefined;
  override _read(): void {}
  override _write(chunk: Buffer, _e: BufferEncoding, done: () => void): void {
    this.received.push(chunk);
    this.onWrite?.();
    done();
  }
  override _final(done: () => void): void {
    this.endedByRelay = true;
    done();
  }
}

/** A client connected to a server whose accepted socket the relay is given. */
async function connection(): Promise<{ client: net.Socket; accepted: net.Socket; close: () => void }> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, allowHalfOpen: true });
  return { client, accepted: await accepted, close: () => server.close() };
}

function read(socket: net.Socket): Promise<{ text: string; error?: string }> {
  let text = '';
  return new Promise((resolve) => {
    socket.on('data', (c: Buffer) => (text += c.toString()));
    socket.on('end', () => resolve({ text }));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ text, error: err.code ?? err.message }));
  });
}

const noFallback = () => assert.fail('no fallback expected');
const until = async (check: () => boolean) => {
  while (!check()) await new Promise((resolve) => setImmediate(resolve));
};

test("the pod's answer reaches the client; the client's half-close is held until the pod ends", async () => {
  const { client, accepted, close } = await connection();
  const pod = new FakePodStream();
  relayThroughPod(accepted, Promise.resolve(pod), noFallback);
  const answer = read(client);
  client.end('request');
  await until(() => Buffer.concat(pod.received).toString() === 'request' && accepted.readableEnded);
  await new Promise((resolve) => setImmediate(resolve)); // the relay's own 'end' listener has run
  assert.equal(pod.endedByRelay, false, "the client's FIN went to the pod before it answered");
  pod.push('answer');
  pod.push(null);
  assert.deepEqual(await answer, { text: 'answer' });
  await until(() => pod.endedByRelay);
  close();
});

test('a stream that fails before the pod answered: the connection and its bytes go to the fallback', async () => {
  const { client, accepted, close } = await connection();
  const pod = new FakePodStream();
  pod.onWrite = () => {
    if (Buffer.concat(pod.received).length === 'first part, second'.length) {
      pod.destroy(new Error('port-forward: dial tcp4 127.0.0.1:8000: connect: connection refused'));
    }
  };
  const handedOver = new Promise<{ unsent: Unsent; reason: Error }>((resolve) =>
    relayThroughPod(accepted, Promise.resolve(pod), (unsent, reason) => {
      // The fallback path: it answers in the pod's place, after the bytes it was handed.
      accepted.on('data', (c: Buffer) => accepted.end(`fallback got ${c.toString()}`));
      accepted.resume();
      resolve({ unsent, reason });
    }),
  );
  const answer = read(client);
  client.write('first part, ');
  await until(() => pod.received.length === 1);
  client.write('second');
  const { unsent, reason } = await handedOver;
  assert.equal(Buffer.concat(unsent.chunks).toString(), 'first part, second');
  assert.equal(unsent.ended, false);
  assert.match(reason.message, /connection refused/);
  client.write('!');
  assert.deepEqual(await answer, { text: 'fallback got !' });
  client.destroy();
  close();
});

test('a port-forward that cannot be opened: the fallback gets the connection with nothing sent', async () => {
  const { client, accepted, close } = await connection();
  client.write('early');
  const handed = await new Promise<Unsent>((resolve) =>
    relayThroughPod(accepted, Promise.reject(new Error('refused: HTTP 403')), (unsent) => resolve(unsent)),
  );
  assert.deepEqual(handed, { chunks: [], ended: false });
  // Nothing was read from the socket: the fallback still gets the client's bytes.
  const first = new Promise<Buffer>((resolve) => accepted.once('data', resolve));
  accepted.resume(); // as the tunnel's pipe does
  assert.equal((await first).toString(), 'early');
  client.destroy();
  close();
});

test('a stream that fails after the pod answered resets the client: no fallback, no clean end', async () => {
  const { client, accepted, close } = await connection();
  const pod = new FakePodStream();
  relayThroughPod(accepted, Promise.resolve(pod), noFallback);
  const answer = read(client);
  client.write('request');
  await until(() => pod.received.length === 1);
  pod.push('part of the answer');
  await new Promise<void>((resolve) => client.once('data', () => resolve()));
  pod.destroy(new Error('the SPDY connection closed'));
  const result = await answer;
  assert.equal(result.text, 'part of the answer');
  assert.equal(result.error, 'ECONNRESET');
  close();
});

test('a stream that fails before any answer for another reason resets the client: the app may have the request', async () => {
  const { client, accepted, close } = await connection();
  const pod = new FakePodStream();
  relayThroughPod(accepted, Promise.resolve(pod), noFallback);
  const answer = read(client);
  client.write('POST /pay');
  await until(() => pod.received.length === 1);
  pod.destroy(new Error('the port-forward connection ended'));
  assert.deepEqual(await answer, { text: '', error: 'ECONNRESET' });
  close();
});
