// How a failure crosses an HTTP/2 stream: `reset` makes the peer see a failed transfer, either
// way (Node 20's `close(code)` let a server's peer see a clean end: cut transfers looked complete).
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { endedCleanly, reset } from './liveness.ts';

type Ending = (stream: http2.ServerHttp2Stream) => void;

/**
 * A server answers a request (its body ended) with `bytes`, then ends its stream with `ending`:
 * whether the client's stream ended cleanly, and how many bytes it got.
 */
async function clientSees(
  bytes: number,
  ending: Ending,
): Promise<{ clean: boolean; received: number; endEvent: boolean; rstCode: number }> {
  const server = http2.createServer();
  server.on('stream', (stream) => {
    stream.on('error', () => undefined);
    stream.respond({ ':status': 200 });
    stream.write(Buffer.alloc(bytes), () => ending(stream));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    const stream = session.request({ ':path': '/' }, { endStream: true });
    let received = 0;
    let endEvent = false;
    stream.on('data', (chunk: Buffer) => (received += chunk.length));
    stream.on('end', () => (endEvent = true));
    stream.on('error', () => undefined);
    await new Promise((resolve) => stream.once('close', resolve));
    return { clean: endedCleanly(stream), received, endEvent, rstCode: stream.rstCode };
  } finally {
    session.destroy();
    server.close();
  }
}

test('a stream reset after its data is seen failed by the peer, with no end to pipe on', async () => {
  const seen = await clientSees(100_000, (stream) => reset(stream));
  assert.deepEqual(seen, {
    clean: false,
    received: 100_000,
    endEvent: false,
    rstCode: http2.constants.NGHTTP2_INTERNAL_ERROR,
  });
  assert.equal((await clientSees(0, (stream) => reset(stream))).clean, false);
});

test('a stream cancelled after its data is seen cancelled (CANCEL) by the peer', async () => {
  const seen = await clientSees(100_000, (stream) => reset(stream, 'cancel'));
  assert.equal(seen.clean, false);
  assert.equal(seen.received, 100_000);
  assert.equal(seen.rstCode, http2.constants.NGHTTP2_CANCEL);
});

test('a request stream reset after its data is seen failed by the server', async () => {
  const server = http2.createServer();
  const seen = new Promise<{ clean: boolean; received: number }>((resolve) =>
    server.on('stream', (stream) => {
      let received = 0;
      stream.on('data', (chunk: Buffer) => (received += chunk.length));
      stream.on('error', () => undefined);
      stream.once('close', () => resolve({ clean: endedCleanly(stream), received }));
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    const stream = session.request({ ':path': '/', ':method': 'POST' });
    stream.write(Buffer.alloc(50_000), () => reset(stream));
    assert.deepEqual(await seen, { clean: false, received: 50_000 });
  } finally {
    session.destroy();
    server.close();
  }
});

test('a stream that ends is seen ended cleanly, and reset does nothing to a destroyed one', async () => {
  assert.equal((await clientSees(10, (stream) => stream.end())).clean, true);
  assert.equal(
    (await clientSees(10, (stream) => (stream.end(), stream.destroy(), reset(stream)))).clean,
    true,
  );
});

test('reset leaves a stream that closed cleanly as it is: its error listeners do not run', async () => {
  const server = http2.createServer();
  server.on('stream', (stream) => stream.respond({ ':status': 200 }, { endStream: true }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    const stream = session.request({ ':path': '/' }, { endStream: true });
    stream.resume();
    let errors = 0;
    stream.on('error', () => errors++);
    await new Promise((resolve) => stream.once('end', resolve));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(stream.closed, true);
    reset(stream);
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(errors, 0);
    assert.equal(endedCleanly(stream), true);
  } finally {
    session.destroy();
    server.close();
  }
});
