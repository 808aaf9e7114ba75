// Proves the SPDY client session reads well-formed frames (reply, data, FIN, ping) and treats a
// malformed one as a protocol error: every stream fails, the connection closes, nothing throws
// and no oversized control frame is buffered.
import assert from 'node:assert/strict';
import { Duplex } from 'node:stream';
import { test } from 'node:test';
import { MAX_CONTROL_BODY, NO_REPLY, SpdySession, type SpdyStream } from './spdy.ts';

function control(type: number, flags: number, body: Buffer, version = 3): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt16BE(0x8000 | version, 0);
  header.writeUInt16BE(type, 2);
  header.writeUInt32BE(body.length, 4);
  header[4] = flags;
  return Buffer.concat([header, body]);
}

function data(id: number, flags: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(id, 0);
  header.writeUInt32BE(payload.length, 4);
  header[4] = flags;
  return Buffer.concat([header, payload]);
}

const u32s = (...values: number[]) =>
  Buffer.concat(values.map((v) => Buffer.from([v >>> 24, v >>> 16, v >>> 8, v])));
const FIN = 1;

/** A session on a fake transport that records what is written; `feed` delivers peer bytes. */
function session() {
  const written: Buffer[] = [];
  const transport = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, callback) {
      written.push(chunk);
      callback();
    },
  });
  const spdy = new SpdySession(transport);
  const stream = spdy.open({ streamtype: 'data' });
  const errors: Error[] = [];
  stream.on('error', (err: Error) => errors.push(err));
  const feed = async (...chunks: Buffer[]) => {
    for (const chunk of chunks) transport.push(chunk);
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { transport, stream, errors, written, feed };
}

async function readAll(stream: SpdyStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += (chunk as Buffer).toString();
  return text;
}

test('a reply, data and FIN reach the stream; a ping is answered', async () => {
  const { stream, written, feed } = session();
  const text = readAll(stream);
  await feed(
    control(2, 0, u32s(1)),
    data(1, 0, Buffer.from('hello ')),
    control(6, 0, u32s(2)),
    data(1, FIN, Buffer.from('world')),
    data(1, 0, Buffer.from('after FIN, ignored')),
  );
  assert.equal(await text, 'hello world');
  assert.ok(written.some((w) => w.equals(control(6, 0, u32s(2)))));
});

const malformed: [string, Buffer][] = [
  ['a reset too short', control(3, 0, u32s(1))],
  ['a FIN reply without a stream id', control(2, FIN, Buffer.alloc(0))],
  ['a ping of 8 bytes', control(6, 0, u32s(1, 2))],
  ['a GOAWAY without a body', control(7, 0, Buffer.alloc(0))],
  ['SPDY/2', control(2, 0, u32s(1), 2)],
];
for (const [what, frame] of malformed) {
  test(`${what} is a protocol error: the stream fails, the transport closes`, async () => {
    const { transport, stream, errors, feed } = session();
    await feed(frame);
    assert.ok(stream.destroyed);
    assert.match(errors[0]?.message ?? '', /SPDY protocol error/);
    assert.ok(transport.destroyed);
  });
}

test('a control frame over the limit fails at its header, before its body arrives', async () => {
  const { transport, errors, feed } = session();
  const header = control(2, 0, Buffer.alloc(0));
  header.writeUInt32BE(MAX_CONTROL_BODY + 1, 4);
  await feed(header);
  assert.match(errors[0]?.message ?? '', /control frame of/);
  assert.ok(transport.destroyed);
  await feed(Buffer.alloc(64)); // more bytes after the error are not read
});

test('written data goes out in frames split at 16 MiB, uncopied; what is written in one tick reaches the transport together; end sends a FIN', async () => {
  const writes: Buffer[][] = [];
  const transport = new Duplex({
    read() {},
    writev(chunks, callback) {
      writes.push(chunks.map((c) => c.chunk as Buffer));
      callback();
    },
  });
  const stream = new SpdySession(transport).open({ streamtype: 'data' });
  await new Promise((resolve) => stream.write(Buffer.from('ab'), resolve)); // in the SYN_STREAM's tick
  const big = Buffer.alloc((16 << 20) + 5, 7);
  await new Promise((resolve) => stream.write(big, resolve));
  await new Promise<void>((resolve) => stream.end(resolve));
  assert.equal(writes.length, 3, 'one writev per tick');
  const [opened, large, fin] = writes as [Buffer[], Buffer[], Buffer[]];
  assert.equal(opened[0]![0], 0x80, 'the SYN_STREAM first');
  assert.deepEqual(Buffer.concat(opened.slice(1)), data(1, 0, Buffer.from('ab')));
  assert.deepEqual(
    large.map((b) => b.length),
    [8, 0xffffff, 8, 6],
  );
  assert.deepEqual(large[0], data(1, 0, Buffer.alloc(0)).fill(0xff, 5, 8)); // 16 MiB - 1 follows
  assert.equal(large[1]!.buffer, big.buffer, 'the payload is not copied');
  assert.deepEqual(Buffer.concat(large.slice(2)), data(1, 0, big.subarray(0xffffff)));
  assert.deepEqual(fin, [data(1, FIN, Buffer.alloc(0))]);
});

test('a stream still open when the connection ends fails; one whose peer had ended does not', async () => {
  const { transport, stream, errors, feed } = session();
  await feed(data(1, 0, Buffer.from('part')));
  transport.push(null); // the WebSocket under it closed
  await new Promise((resolve) => setImmediate(resolve));
  assert.match(errors[0]?.message ?? '', /the port-forward connection ended/);
  assert.ok(stream.destroyed);

  const ended = session();
  const text = readAll(ended.stream);
  await ended.feed(data(1, FIN, Buffer.from('whole')));
  ended.transport.push(null);
  assert.equal(await text, 'whole');
  assert.ok(!ended.errors.some((e) => /connection ended/.test(e.message)), String(ended.errors));
});

test("a stream that ends while its reader is behind no longer holds up the others' data", async () => {
  const { transport, stream, feed } = session();
  const spdy = (stream as unknown as { session: SpdySession }).session;
  const other = spdy.open({ streamtype: 'data' }); // stream 3
  // Nobody reads stream 1: 1 MiB (its high-water mark) pauses the connection, but its FIN came
  // in the same read: nothing more can come for it, so the connection flows on.
  await feed(Buffer.concat([data(1, 0, Buffer.alloc(1 << 20)), data(1, FIN, Buffer.alloc(0))]));
  assert.equal(transport.isPaused(), false);
  const text = readAll(other);
  await feed(data(3, FIN, Buffer.from('still flowing')));
  assert.equal(await text, 'still flowing');
});

test('a stream the peer never accepted fails as such when the connection ends; an accepted one does not say so', async () => {
  const unreplied = session();
  unreplied.transport.push(null);
  await new Promise((resolve) => setImmediate(resolve));
  assert.ok(unreplied.errors[0]?.message.startsWith(NO_REPLY), unreplied.errors[0]?.message);

  const replied = session();
  await replied.feed(control(2, 0, u32s(1)));
  replied.transport.push(null);
  await new Promise((resolve) => setImmediate(resolve));
  assert.match(replied.errors[0]?.message ?? '', /^the port-forward connection ended/);
});
