// coalesceSmall: runs of short pieces become one buffer, large pieces pass uncopied, in order.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { coalesceSmall, corkUntilNextTick, MAX_JOINED, SENT_AS_IS } from './coalesce.ts';

test('short pieces written together are joined; a large one is passed on as it is, in order', () => {
  const large = Buffer.alloc(SENT_AS_IS, 1);
  const out = coalesceSmall([Buffer.from('ab'), Buffer.from('cd'), large, Buffer.alloc(0), Buffer.from('e')]);
  assert.deepEqual(out, [Buffer.from('abcd'), large, Buffer.from('e')]);
  assert.equal(out[1], large, 'not copied');
});

test('a single short piece is not copied, and nothing gives nothing', () => {
  const piece = Buffer.from('frame');
  assert.equal(coalesceSmall([piece])[0], piece);
  assert.deepEqual(coalesceSmall([]), []);
  assert.deepEqual(coalesceSmall([Buffer.alloc(0)]), []);
});

test('a long run of short pieces is split into messages of about MAX_JOINED', () => {
  const piece = Buffer.alloc(16 << 10, 2);
  const pieces = Array.from({ length: (2 * MAX_JOINED) / piece.length + 1 }, () => piece);
  const out = coalesceSmall(pieces);
  assert.deepEqual(
    out.map((b) => b.length),
    [MAX_JOINED, MAX_JOINED, piece.length],
  );
  assert.deepEqual(Buffer.concat(out), Buffer.concat(pieces));
});

test("the writes of one tick reach the stream as one writev, the next tick's as another", async () => {
  const batches: string[][] = [];
  const sink = new Writable({
    writev(chunks, callback) {
      batches.push(chunks.map((c) => String(c.chunk)));
      callback();
    },
  });
  const cork = corkUntilNextTick(sink);
  for (const word of ['a', 'b', 'c']) {
    cork();
    sink.write(word);
  }
  await new Promise((resolve) => setImmediate(resolve));
  cork();
  sink.write('d');
  await new Promise((resolve) => setImmediate(resolve));
  assert.deepEqual(batches, [['a', 'b', 'c'], ['d']]);
});
