// Writes that go out together: everything written to a stream in one tick reaches it as one
// writev (`corkUntilNextTick`), and which of those buffers go out as one WebSocket message:
// each message is a TLS write and a system call of its own, so the short ones written together
// (SPDY's control frames, a data frame's header, an HTTP/2 frame's header and payload) are
// copied into one, while large ones are sent as they are (a copy is one more buffer for the
// garbage collector to free).
import type { Writable } from 'node:stream';

/** A written piece at least this large is sent as it is, not copied. */
export const SENT_AS_IS = 32 << 10;
/** A run of short pieces ends at this size: one message is one allocation held until sent. */
export const MAX_JOINED = 256 << 10;

/**
 * `chunks` as the buffers to send, in order: each run of pieces shorter than `SENT_AS_IS`
 * copied into one buffer (a new one once a run reaches `MAX_JOINED`), larger pieces passed on
 * uncopied.
 */
export function coalesceSmall(chunks: readonly Buffer[]): Buffer[] {
  const out: Buffer[] = [];
  let run: Buffer[] = [];
  let runBytes = 0;
  const endRun = () => {
    if (run.length === 1) out.push(run[0]!);
    else if (run.length > 1) out.push(Buffer.concat(run, runBytes));
    run = [];
    runBytes = 0;
  };
  for (const chunk of chunks) {
    if (chunk.length >= SENT_AS_IS) {
      endRun();
      out.push(chunk);
    } else if (chunk.length) {
      run.push(chunk);
      runBytes += chunk.length;
      if (runBytes >= MAX_JOINED) endRun();
    }
  }
  endRun();
  return out;
}

/**
 * A function to call before each write to `stream`: the first in a tick corks it, and it is
 * uncorked on the next tick, so the writes of one tick reach it as one writev.
 */
export function corkUntilNextTick(stream: Writable): () => void {
  let corked = false;
  return () => {
    if (corked) return;
    corked = true;
    stream.cork();
    process.nextTick(() => {
      corked = false;
      stream.uncork();
    });
  };
}
