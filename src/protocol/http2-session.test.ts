// The HTTP/2 options every telepod session uses: a session whose answers queue up behind a slow
// reader still takes new streams (with Node's default session memory, 10 MB, it refused them).
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { test } from 'node:test';
import { HTTP2_CONNECTION_WINDOW, HTTP2_SESSION_OPTIONS } from './paths.ts';

const STREAMS = 300;
const ANSWER_BYTES = 128 << 10;
const nextTurn = () => new Promise((resolve) => setTimeout(resolve, 0));

/**
 * Opens STREAMS streams, 25 a turn, while the client reads nothing (37.5 MiB of answers queue at
 * the server, within the client's connection window), then reads them all: how many failed.
 */
async function failedStreams(options: http2.ServerOptions & http2.ClientSessionOptions): Promise<number> {
  const server = http2.createServer(options, (_, res) => res.end(Buffer.alloc(ANSWER_BYTES)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  const session = http2.connect('http://localhost', { ...options, createConnection: () => socket });
  session.on('error', () => undefined);
  try {
    await new Promise((resolve) => session.once('connect', resolve));
    session.setLocalWindowSize(HTTP2_CONNECTION_WINDOW);
    socket.pause();
    const outcomes: Promise<boolean>[] = [];
    for (let i = 0; i < STREAMS; i++) {
      const stream = session.request({ ':path': `/${i}` });
      outcomes.push(
        new Promise<boolean>((resolve) => {
          let bytes = 0;
          stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
          stream.once('error', () => resolve(false));
          stream.once('close', () => resolve(bytes === ANSWER_BYTES));
        }),
      );
      if (i % 25 === 24) await nextTurn();
    }
    socket.resume();
    return (await Promise.all(outcomes)).filter((whole) => !whole).length;
  } finally {
    session.destroy();
    server.close();
  }
}

test('a session with answers waiting for a slow reader accepts new streams', async () => {
  assert.equal(await failedStreams(HTTP2_SESSION_OPTIONS), 0);
});
