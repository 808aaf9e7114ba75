// Gives the memory freed after a burst of traffic back to the operating system. Every byte the
// daemon forwards passes through a few short-lived buffers, which glibc's malloc serves from the
// process heap. Once freed they sit between live allocations, and malloc trims only the top of
// the heap on free, so the daemon's RSS stayed at its busiest moment's mark (126 MB after the
// bench's bulk transfers, 73 MB at rest). Once a second, when the RSS grew by more than a few
// MiB since the last trim, malloc_trim(0) runs on libuv's thread pool and returns the heap's
// free pages (madvise); the next burst faults them in again. Called through koffi, the daemon's
// native add-on: Node has no binding for it. On a libc without it (musl) nothing is done. Before
// trimming, when array buffers hold over 16 MiB, a full collection frees those that outlived two
// young collections (a download's buffers waiting in the HTTP/2 window): V8 itself collects them
// only after 64 MiB more, or once the process has been idle for seconds.
import { createRequire } from 'node:module';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

type Koffi = typeof import('koffi');
type MallocTrim = ((pad: number) => number) & {
  async: (pad: number, callback: (err: Error | null, result: number) => void) => void;
};

let bound: MallocTrim | null | undefined;

/** glibc's malloc_trim, bound once; null where the libc lacks it. */
function mallocTrim(): MallocTrim | null {
  if (bound !== undefined) return bound;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as Koffi;
    bound = koffi.load('libc.so.6').func('int malloc_trim(size_t pad)');
  } catch {
    bound = null;
  }
  return bound;
}

/** Returns the heap's free pages to the operating system, off the event loop; false where it cannot. */
export async function trimHeap(): Promise<boolean> {
  const trim = mallocTrim();
  if (!trim) return false;
  await new Promise<void>((resolve, reject) => trim.async(0, (err) => (err ? reject(err) : resolve())));
  return true;
}

let collect: (() => void) | undefined;

/**
 * A full garbage collection when array buffers hold over 16 MiB: buffers promoted to V8's old
 * generation are freed only by one, which V8 starts on its own after 64 MiB more of them.
 */
function collectDeadBuffers(): void {
  if (process.memoryUsage().arrayBuffers < 16 << 20) return;
  if (!collect) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as () => void;
  }
  collect();
}

/**
 * Every `intervalMs`, trims the heap when the RSS grew by more than `growthBytes` since the
 * last trim (or since it was lowest). The timer never keeps the process alive; `stop` ends it.
 */
export function trimHeapPeriodically(intervalMs = 1000, growthBytes = 4 << 20): { stop(): void } {
  let busy = false;
  let baseline = process.memoryUsage.rss();
  const timer = setInterval(() => {
    const rss = process.memoryUsage.rss();
    baseline = Math.min(baseline, rss);
    if (busy || rss < baseline + growthBytes || !mallocTrim()) return;
    busy = true;
    collectDeadBuffers();
    trimHeap()
      .catch(() => false)
      .finally(() => {
        baseline = process.memoryUsage.rss();
        busy = false;
      });
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
