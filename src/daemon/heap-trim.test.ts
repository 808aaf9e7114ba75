// heap-trim against this process's real glibc heap: memory freed between live allocations
// stays in the RSS until trimming gives it back.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { trimHeap, trimHeapPeriodically } from './heap-trim.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** 64 MiB in 16 KiB buffers (below malloc's mmap threshold, so on the heap), every 16th kept. */
function fragmentHeap(): Buffer[] {
  const buffers = Array.from({ length: 4096 }, () => Buffer.allocUnsafeSlow(16 << 10).fill(1));
  const kept = buffers.filter((_, i) => i % 16 === 0);
  buffers.length = 0;
  gc();
  return kept;
}

test('memory freed between live buffers is returned by trimming, and live buffers keep their bytes', async () => {
  // The kept buffers keep the freed ones from being the heap's top, which free() would trim.
  const kept = fragmentHeap();
  const before = process.memoryUsage.rss();
  assert.equal(await trimHeap(), true);
  const after = process.memoryUsage.rss();
  assert.ok(before - after > 32 << 20, `RSS ${before} -> ${after}: at least 32 MiB returned`);
  assert.ok(
    kept.every((b) => b[0] === 1 && b[b.length - 1] === 1),
    'the buffers still in use keep their bytes',
  );
});

/** Waits until V8 has freed the dead buffers' memory (it sweeps array buffers on a thread). */
async function swept(): Promise<void> {
  const deadline = Date.now() + 5000;
  while (process.memoryUsage().arrayBuffers > 8 << 20) {
    assert.ok(Date.now() < deadline, `array buffers still ${process.memoryUsage().arrayBuffers} after 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test('the periodic trim returns memory once the RSS has grown', async () => {
  // Started before the growth (its baseline), checking once a second: the first trim comes
  // after V8 has swept the dead buffers (milliseconds), not before it, when it would return
  // little and take the still-high RSS as its new baseline.
  const trimmer = trimHeapPeriodically(1000);
  try {
    const kept = fragmentHeap();
    const sweepStart = Date.now();
    await swept();
    assert.ok(Date.now() - sweepStart < 800, 'swept before the first trim');
    const grown = process.memoryUsage.rss();
    const deadline = Date.now() + 10_000;
    while (process.memoryUsage.rss() > grown - (32 << 20)) {
      assert.ok(Date.now() < deadline, `RSS still ${process.memoryUsage.rss()} after 10 s (was ${grown})`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(kept.length, 256);
  } finally {
    trimmer.stop();
  }
});
