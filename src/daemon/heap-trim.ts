// Gives the memory freed after a burst of traffic back to the operating system. Every byte the
// daemon forwards passes through a few short-lived buffers, which glibc's malloc serves from the
// process heap. Once freed they sit between live allocations, and malloc trims only the top of
// the heap on free, so the daemon's RSS stayed at its busiest moment's mark (126 MB after the
// bench's bulk transfers, 73 MB at rest). Once a second, on libuv's thread pool, mallinfo2()
// tells how much the heap holds free; above a threshold, malloc_trim(0) returns those pages
// (madvise), which the next burst faults in again. Called through koffi, the daemon's native
// add-on: Node has no binding for either function. On a libc without them (musl) nothing is done.
import { createRequire } from 'node:module';

type Koffi = typeof import('koffi');
type AsyncCall<R> = { async: (...args: unknown[]) => void } & ((...args: unknown[]) => R);

interface HeapFunctions {
  mallinfo2: AsyncCall<{ fordblks: number | bigint }>;
  mallocTrim: AsyncCall<number>;
}

let bound: HeapFunctions | null | undefined;

/** glibc's mallinfo2 and malloc_trim, bound once; null where the libc lacks them. */
function heapFunctions(): HeapFunctions | null {
  if (bound !== undefined) return bound;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as Koffi;
    const libc = koffi.load('libc.so.6');
    const fields = ['arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks'];
    const info = koffi.struct(
      'telepod_mallinfo2',
      Object.fromEntries([...fields, 'fordblks', 'keepcost'].map((name) => [name, 'size_t'])),
    );
    bound = {
      mallinfo2: libc.func('mallinfo2', info, []) as unknown as HeapFunctions['mallinfo2'],
      mallocTrim: libc.func('int malloc_trim(size_t pad)') as unknown as HeapFunctions['mallocTrim'],
    };
  } catch {
    bound = null;
  }
  return bound;
}

function callAsync<R>(fn: AsyncCall<R>, ...args: unknown[]): Promise<R> {
  return new Promise((resolve, reject) =>
    fn.async(...args, (err: Error | null, result: R) => (err ? reject(err) : resolve(result))),
  );
}

/** Bytes the process heap holds free (mallinfo2's fordblks); null where unknown. */
export async function freeHeapBytes(): Promise<number | null> {
  const heap = heapFunctions();
  return heap ? Number((await callAsync(heap.mallinfo2)).fordblks) : null;
}

/** Returns the heap's free pages to the operating system; false where it cannot. */
export async function trimHeap(): Promise<boolean> {
  const heap = heapFunctions();
  if (!heap) return false;
  await callAsync(heap.mallocTrim, 0);
  return true;
}

/**
 * Every `intervalMs`, trims the heap when it holds more than `thresholdBytes` free. The timer
 * never keeps the process alive; `stop` ends it.
 */
export function trimHeapPeriodically(intervalMs = 1000, thresholdBytes = 8 << 20): { stop(): void } {
  let busy = false;
  const timer = setInterval(() => {
    if (busy || !heapFunctions()) return;
    busy = true;
    freeHeapBytes()
      .then((free) => (free !== null && free > thresholdBytes ? trimHeap() : false))
      .catch(() => false)
      .finally(() => (busy = false));
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
