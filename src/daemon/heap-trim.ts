// Gives the memory freed after a burst of traffic back to the operating system. Every byte the
// daemon forwards passes through a few short-lived buffers, which glibc's malloc serves from the
// process heap. Once freed they sit between live allocations, and malloc trims only the top of
// the heap on free, so the daemon's RSS stayed at its busiest moment's mark (126 MB after the
// bench's bulk transfers, 73 MB at rest). Once a second, when the RSS grew by more than a few
// MiB since the last trim, malloc_trim(0) runs on libuv's thread pool and returns the heap's
// free pages (madvise); the next burst faults them in again. Called through koffi, the daemon's
// native add-on: Node has no binding for it. On a libc without it (musl) nothing is done. The
// buffers themselves are freed by `src/protocol/dead-buffers.ts`.
import { createRequire } from 'node:module';

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
