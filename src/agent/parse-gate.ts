// A client connection as Node's HTTP server reads it, with a gate in front of its parser: the
// client's bytes are passed on in small slices, and only while the router wants more requests,
// so a client that pipelines many requests at once never gets more than a few parsed ahead.
import net from 'node:net';
import { Duplex } from 'node:stream';

/** At most this many bytes reach the parser at once: fewer than 64 requests fit in it. */
const SLICE = 1024;

/** `inner`'s bytes, given to whoever reads this in slices while `open()`; writes go to `inner`. */
export class ParseGate extends Duplex {
  private readonly held: Buffer[] = [];
  private innerEnded = false;
  /** Set while pumping: a push can get the reader to call back in, which must wait its turn. */
  private pumping = false;
  private again = false;

  constructor(
    readonly inner: Duplex,
    private readonly open: () => boolean,
  ) {
    // A slice is passed on only once the one before it was read (parsed).
    super({ allowHalfOpen: true, readableHighWaterMark: 1 });
    inner.on('data', (chunk: Buffer) => {
      this.held.push(chunk);
      inner.pause();
      this.pump();
    });
    inner.once('end', () => {
      this.innerEnded = true;
      this.pump();
    });
    inner.on('error', (err: Error) => this.destroy(err));
    inner.once('close', () => this.destroy());
    if (inner instanceof net.Socket) inner.on('timeout', () => this.emit('timeout'));
  }

  /** Passes on what is held while the gate is open and the reader keeps up. */
  pump(): void {
    if (this.pumping) return void (this.again = true);
    this.pumping = true;
    try {
      do {
        this.again = false;
        this.pass();
      } while (this.again);
    } finally {
      this.pumping = false;
    }
  }

  private pass(): void {
    while (!this.destroyed && this.open()) {
      const chunk = this.held[0];
      if (!chunk) {
        if (!this.innerEnded) return void this.inner.resume();
        this.innerEnded = false;
        return void this.push(null);
      }
      if (chunk.length <= SLICE) this.held.shift();
      else this.held[0] = chunk.subarray(SLICE);
      if (!this.push(chunk.subarray(0, SLICE))) return;
    }
  }

  override _read(): void {
    this.pump();
  }

  override _write(chunk: Buffer, encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.inner.write(chunk, encoding, done);
  }

  override _final(done: (err?: Error | null) => void): void {
    this.inner.end();
    done();
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.inner.destroy();
    done(err);
  }

  /** As a socket's (Node's HTTP server sets its keep-alive timeout with it). */
  setTimeout(ms: number, callback?: () => void): this {
    if (this.inner instanceof net.Socket) this.inner.setTimeout(ms);
    if (callback) this.once('timeout', callback);
    return this;
  }
}
