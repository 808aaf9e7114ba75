// dead-buffers: a full collection follows a growth of array buffers, measured from their
// lowest, and waits longer when what it finds is live; in this process's real V8, promoted
// buffers that died are freed by it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { collectDeadBuffersPeriodically, DeadBufferWatch } from './dead-buffers.ts';

const MiB = 1 << 20;
const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A watch over a fake amount of array buffers; a collection frees `freeable` of it. */
function fakeWatch(start: number) {
  const memory = { bytes: start * MiB, freeable: 0 };
  const watch = new DeadBufferWatch({
    growthBytes: 8 * MiB,
    arrayBufferBytes: () => memory.bytes,
    collect: () => {
      memory.bytes -= memory.freeable;
      memory.freeable = 0;
    },
  });
  /** Sets the amount (MiB), of which `dead` MiB a collection would free; whether it collected. */
  const at = (mib: number, dead = 0) => {
    memory.bytes = mib * MiB;
    memory.freeable = dead * MiB;
    return watch.check();
  };
  return at;
}

test('a collection runs once array buffers grew by 8 MiB over their lowest, and counts again from what it left', () => {
  const at = fakeWatch(20);
  assert.equal(at(12), false); // the new lowest
  assert.equal(at(19), false); // 7 over it
  assert.equal(at(21, 9), true); // 9 over it, all dead: back to 12
  assert.equal(at(19), false); // 7 over what the collection left
  assert.equal(at(20, 8), true);
});

test('growth that a collection does not free makes the next one wait for twice as much, up to 64 MiB, and a freeing one starts over', () => {
  const at = fakeWatch(0);
  assert.equal(at(8), true); // live: next after 16 more
  assert.equal(at(23), false);
  assert.equal(at(24), true); // live: next after 32 more
  assert.equal(at(55), false);
  assert.equal(at(56), true); // live: 64
  assert.equal(at(119), false);
  assert.equal(at(120), true); // live: stays at 64
  assert.equal(at(183), false);
  assert.equal(at(184, 60), true); // freed most: back to 8
  assert.equal(at(131), false);
  assert.equal(at(132), true);
});

test('buffers that outlived two young collections and died are freed within the interval', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as (options?: { type: 'minor' }) => void;
  gc();
  const watch = collectDeadBuffersPeriodically(20);
  try {
    const kept: Buffer[] = Array.from({ length: 512 }, () => Buffer.allocUnsafeSlow(64 << 10));
    gc({ type: 'minor' });
    gc({ type: 'minor' }); // promoted, as a queued chunk is
    kept.length = 0; // dead now
    const held = process.memoryUsage().arrayBuffers;
    assert.ok(held >= 32 * MiB, `${held} bytes of array buffers held after they died`);
    const deadline = Date.now() + 1000;
    while (process.memoryUsage().arrayBuffers > held - 24 * MiB) {
      assert.ok(Date.now() < deadline, `still ${process.memoryUsage().arrayBuffers} bytes after 1 s`);
      await tick(10);
    }
  } finally {
    watch.stop();
  }
});
