// Frees the buffers traffic leaves behind soon after they die, not 64 MiB later. Every chunk
// the daemon forwards is an array buffer; one that waits in a queue for a few milliseconds
// outlives two young collections (1 MiB each, many a second) and moves to V8's old generation,
// which only a full collection clears, and V8 starts one on its own only once array buffers
// grew by 64 MiB. In the bench's downloads they climbed by 26–39 MiB within half a second and
// the daemon's RSS peaked at 111–121 MB; collecting whenever they grew by 8 MiB kept the peak
// at 93–94 MB at the same speed (a full collection of the daemon's ~18 MB heap takes 2–10 ms).
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

/** How the watch reads memory and collects; a test passes its own. */
export interface DeadBufferOptions {
  intervalMs?: number;
  growthBytes?: number;
  arrayBufferBytes?: () => number;
  collect?: () => void;
}

/**
 * Every `intervalMs`, a full collection when array buffers hold `growthBytes` more than at
 * their lowest since the last one. The timer never keeps the process alive; `stop` ends it.
 */
export function collectDeadBuffersPeriodically({
  intervalMs = 100,
  growthBytes = 8 << 20,
  arrayBufferBytes = () => process.memoryUsage().arrayBuffers,
  collect = collectGarbage,
}: DeadBufferOptions = {}): { stop(): void } {
  let lowest = arrayBufferBytes();
  const timer = setInterval(() => {
    const now = arrayBufferBytes();
    lowest = Math.min(lowest, now);
    if (now < lowest + growthBytes) return;
    collect();
    lowest = arrayBufferBytes();
  }, intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
