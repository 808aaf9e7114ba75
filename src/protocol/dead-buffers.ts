// Frees the buffers traffic leaves behind soon after they die, not 64 MiB later. Every chunk
// the daemon forwards is an array buffer; one that waits in a queue for a few milliseconds
// outlives two young collections (1 MiB each, many a second) and moves to V8's old generation,
// which only a full collection clears, and V8 starts one on its own only once array buffers
// grew by 64 MiB. In the bench's downloads they climbed by 26–39 MiB within half a second and
// the daemon's RSS peaked at 111–126 MB; collecting whenever they grew by 8 MiB kept the peak
// at 93–95 MB (a full collection of the daemon's ~18 MB heap takes 2–10 ms; downloads by name
// were 262 against 271 MB/s without it over nine transfers, within the runs' spread).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let fullCollection: (() => void) | undefined;

/** V8's full garbage collection, exposed to this process once. */
function collectGarbage(): void {
  if (!fullCollection) {
    setFlagsFromString('--expose-gc');
    fullCollection = runInNewContext('gc') as () => void;
  }
  fullCollection();
}

/** The largest growth waited for: where V8 starts a full collection for array buffers itself. */
const MAX_GROWTH = 64 << 20;

/** How the watch reads memory and collects; a test passes its own. */
export interface DeadBufferOptions {
  growthBytes?: number;
  arrayBufferBytes?: () => number;
  collect?: () => void;
}

/**
 * Decides, each time it is asked, whether array buffers grew enough since their lowest to be
 * worth a full collection. Growth that a collection does not free is live data (many slow
 * readers, each with its queue): the next collection then waits for twice as much, up to
 * V8's own 64 MiB, so live data never makes collections run back to back; one that frees
 * most of it starts over at `growthBytes`.
 */
export class DeadBufferWatch {
  private readonly growthBytes: number;
  private readonly arrayBufferBytes: () => number;
  private readonly collect: () => void;
  private threshold: number;
  private lowest: number;

  constructor({
    growthBytes = 8 << 20,
    arrayBufferBytes = () => process.memoryUsage().arrayBuffers,
    collect = collectGarbage,
  }: DeadBufferOptions = {}) {
    this.growthBytes = growthBytes;
    this.arrayBufferBytes = arrayBufferBytes;
    this.collect = collect;
    this.threshold = growthBytes;
    this.lowest = arrayBufferBytes();
  }

  /** Collects if array buffers grew by the threshold; whether it did. */
  check(): boolean {
    const now = this.arrayBufferBytes();
    this.lowest = Math.min(this.lowest, now);
    const growth = now - this.lowest;
    if (growth < this.threshold) return false;
    this.collect();
    const after = this.arrayBufferBytes();
    const freedMost = now - after >= growth / 2;
    this.threshold = freedMost ? this.growthBytes : Math.min(this.threshold * 2, MAX_GROWTH);
    this.lowest = after;
    return true;
  }
}

/**
 * Every `intervalMs`, a `DeadBufferWatch` check. The timer never keeps the process alive;
 * `stop` ends it.
 */
export function collectDeadBuffersPeriodically(
  intervalMs = 100,
  options: DeadBufferOptions = {},
): { stop(): void } {
  const watch = new DeadBufferWatch(options);
  const timer = setInterval(() => watch.check(), intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
