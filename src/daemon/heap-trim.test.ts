// heap-trim against this process's real glibc heap: memory freed between live allocations is
// counted as free, and trimming gives it back (RSS falls).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { freeHeapBytes, trimHeap } from './heap-trim.ts';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

test('memory freed between live buffers is counted free, and trimming returns it', async () => {
  // 16 KiB buffers, like the TLS layer's: below malloc's mmap threshold, so on the heap. Every
  // 16th stays alive, which keeps the freed ones from being the heap's top.
  const buffers = Array.from({ length: 4096 }, () => Buffer.allocUnsafeSlow(16 << 10).fill(1));
  const kept = buffers.filter((_, i) => i % 16 === 0);
  buffers.length = 0;
  gc();
  const free = await freeHeapBytes();
  assert.ok(free !== null, 'glibc heap functions are bound');
  assert.ok(free > 32 << 20, `the heap holds ${free} bytes free after 60 MiB were dropped`);
  const before = process.memoryUsage.rss();
  assert.equal(await trimHeap(), true);
  const after = process.memoryUsage.rss();
  assert.ok(before - after > 32 << 20, `RSS ${before} -> ${after}: at least 32 MiB returned`);
  assert.ok(
    kept.every((b) => b[0] === 1 && b[b.length - 1] === 1),
    'the buffers still in use keep their bytes',
  );
});
