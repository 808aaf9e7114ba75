// dead-buffers: a full collection follows a growth of array buffers, measured from their
// lowest; and in this process's real V8, promoted buffers that died are freed by it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { collectDeadBuffersPeriodically } from './dead-buffers.ts';

const MiB = 1 << 20;
const tick = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('a collection runs once array buffers grew by the threshold over their lowest, not before', async () => {
  const readings = [20, 12, 19, 21, 5, 5].map((n) => n * MiB); // then 5 MiB from here on
  let at = 0;
  const collections: number[] = [];
  const watch = collectDeadBuffersPeriodically({
    intervalMs: 5,
    growthBytes: 8 * MiB,
    arrayBufferBytes: () => readings[Math.min(at++, readings.length - 1)]!,
    collect: () => collections.push(at),
  });
  try {
    while (at < readings.length + 3) await tick(5);
  } finally {
    watch.stop();
  }
  // 20 at the start, lowest 12, 19 is 7 over it, 21 is 9 over: collected there, and after it
  // reads 5 (its new lowest) nothing more grows.
  assert.deepEqual(collections, [4]);
});

test('buffers that outlived two young collections and died are freed within the interval', async () => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as (options?: { type: 'minor' }) => void;
  gc();
  const watch = collectDeadBuffersPeriodically({ intervalMs: 20 });
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
