// A small SPDY/3.1 client session: what the kubelet speaks for port-forward, reached through
// the API server's WebSocket tunnel (`SPDY/3.1+portforward.k8s.io`, as kubectl does since
// Kubernetes 1.31). It opens streams with headers, carries data both ways with half-close,
// answers pings and honours resets. No flow-control windows: Kubernetes' spdystream neither
// sends nor honours WINDOW_UPDATE, and the TCP connection under the WebSocket carries the
// backpressure. Written here rather than taken from npm: the SPDY transport there,
// spdy-transport (node-spdy's), is built around its HTTP server and brings its own stream and
// compression machinery, for what this client needs of five frame types.
// The frames come from the network: a malformed one (bad version, a body too short for its
// type, a control frame over MAX_CONTROL_BODY) is a protocol error that fails every stream and
// closes the connection. Received header blocks are never inflated (nothing in them is needed),
// so no zlib stream of the peer's is ever expanded; data frames are passed on as they arrive.
import { Duplex } from 'node:stream';
import { corkUntilNextTick } from './coalesce.ts';

const CONTROL_BIT = 0x80;
const VERSION = 3;
const FRAME = { synStream: 1, synReply: 2, rstStream: 3, ping: 6, goAway: 7 } as const;
const FLAG_FIN = 0x01;
const RST_CANCEL = 5;
const HEADER_LENGTH = 8;
/** The largest data frame (24-bit length). */
const MAX_DATA = 0xffffff;
/** The largest control frame body kept until it is complete; the kubelet's are tens of bytes. */
export const MAX_CONTROL_BODY = 1 << 20;
/** How a stream the peer never accepted fails: nothing sent on it reached the peer's side. */
export const NO_REPLY = 'the SPDY stream was never accepted';
/** Pings are answered only while less than this is waiting to be sent. */
const MAX_UNSENT_FOR_PING = 1 << 20;
/** The body lengths of the control frames this client reads: exactly, or at least. */
const BODY_LENGTH: Record<number, { bytes: number; exact: boolean } | undefined> = {
  [FRAME.synReply]: { bytes: 4, exact: false },
  [FRAME.rstStream]: { bytes: 8, exact: true },
  [FRAME.ping]: { bytes: 4, exact: true },
  [FRAME.goAway]: { bytes: 4, exact: false },
};

/**
 * The header block of SYN_STREAM: name/value pairs in SPDY/3 layout, inside a zlib stream that
 * lasts the whole session. Its blocks are stored (uncompressed) deflate blocks, so the stream
 * needs no compressor state; the zlib header starts the first block only.
 */
export function headerBlock(headers: Record<string, string>, first: boolean): Buffer {
  const parts: Buffer[] = [u32(Object.keys(headers).length)];
  for (const [name, value] of Object.entries(headers)) {
    const n = Buffer.from(name.toLowerCase());
    const v = Buffer.from(value);
    parts.push(u32(n.length), n, u32(v.length), v);
  }
  const raw = Buffer.concat(parts);
  const stored = Buffer.alloc(5);
  stored[0] = 0; // BFINAL 0, BTYPE 00 (stored), padded to the byte
  stored.writeUInt16LE(raw.length, 1);
  stored.writeUInt16LE(~raw.length & 0xffff, 3);
  // An empty stored block after it, as a sync flush writes: Go's inflater hands out a stored
  // block's bytes only once it has read the next block's header, which must be in this frame.
  const flush = Buffer.of(0x00, 0x00, 0x00, 0xff, 0xff);
  return Buffer.concat([first ? Buffer.of(0x78, 0x01) : Buffer.alloc(0), stored, raw, flush]);
}

function u32(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32BE(value);
  return buffer;
}

function controlFrame(type: number, flags: number, body: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_LENGTH);
  header[0] = CONTROL_BIT;
  header[1] = VERSION;
  header.writeUInt16BE(type, 2);
  header.writeUInt32BE(body.length, 4);
  header[4] = flags;
  return Buffer.concat([header, body]);
}

/**
 * Data frames carrying `chunks`, as the pieces to write: each frame's 8-byte header, then its
 * payload as slices of the chunks, never copied (the transport joins the short pieces of a
 * tick into one message).
 */
function dataFrames(streamId: number, chunks: Buffer[]): Buffer[] {
  const pieces: Buffer[] = [];
  let pending = chunks.reduce((total, chunk) => total + chunk.length, 0);
  let frameRoom = 0;
  for (const chunk of chunks) {
    for (let offset = 0; offset < chunk.length;) {
      if (frameRoom === 0) {
        frameRoom = Math.min(pending, MAX_DATA);
        const header = Buffer.allocUnsafe(HEADER_LENGTH);
        header.writeUInt32BE(streamId & 0x7fffffff, 0);
        header.writeUInt32BE(frameRoom, 4); // flags 0 in the top byte
        pieces.push(header);
      }
      const piece = chunk.subarray(offset, offset + frameRoom);
      pieces.push(piece);
      offset += piece.length;
      frameRoom -= piece.length;
      pending -= piece.length;
    }
  }
  return pieces;
}

function finFrame(streamId: number): Buffer {
  const frame = Buffer.alloc(HEADER_LENGTH);
  frame.writeUInt32BE(streamId & 0x7fffffff, 0);
  frame[4] = FLAG_FIN;
  return frame;
}

/** A SPDY/3.1 client session on `transport`: opens streams, frames their data, reads the peer's frames. */
export class SpdySession {
  private nextStreamId = 1; // a client's streams are odd
  private readonly streams = new Map<number, SpdyStream>();
  private sentHeaders = false;
  /** The frame being received: its header and, for a control frame, its body so far. */
  private frame: { header: Buffer; remaining: number; body: Buffer[] } | undefined;
  private headerBytes = Buffer.alloc(0);
  /** Set by a protocol error: nothing more is read or sent. */
  private failed = false;
  /** Streams whose reader is behind: the connection is paused while there is one. */
  private readonly behind = new Set<number>();
  private ended = false;
  private readonly closeListeners: (() => void)[] = [];
  /** Corks the transport until the next tick (see `send`). */
  private readonly corkForTick: () => void;

  constructor(private readonly transport: Duplex) {
    this.corkForTick = corkUntilNextTick(transport);
    transport.on('data', (chunk: Buffer) => this.receive(chunk));
    // A stream still open when the connection ends was cut short: it fails, never ends cleanly.
    transport.once('end', () => this.closeAll(new Error('the port-forward connection ended')));
    transport.once('close', () => this.closeAll(new Error('the SPDY connection closed')));
    transport.on('error', (err: Error) => this.closeAll(err));
  }

  /** Whether a stream's slow reader holds the connection paused (nothing else is read meanwhile). */
  get heldUp(): boolean {
    return this.behind.size > 0;
  }

  /** Whether the connection has ended: no stream can be opened on it any more. */
  get closed(): boolean {
    return this.ended || this.failed || this.transport.destroyed || !this.transport.writable;
  }

  /** Calls `listener` once, when the connection ends (every stream has ended with it). */
  onClose(listener: () => void): void {
    if (this.ended) listener();
    else this.closeListeners.push(listener);
  }

  /** Opens a stream with these headers; data may be written at once. */
  open(headers: Record<string, string>): SpdyStream {
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new SpdyStream(this, id);
    this.streams.set(id, stream);
    const ids = Buffer.alloc(10); // stream id, associated stream 0, priority 0, slot 0
    ids.writeUInt32BE(id, 0);
    const block = headerBlock(headers, !this.sentHeaders);
    this.sentHeaders = true;
    this.send(controlFrame(FRAME.synStream, 0, Buffer.concat([ids, block])));
    return stream;
  }

  /** Sends data (in frames of at most 16 MiB); `done` once the transport took it. */
  sendData(id: number, chunks: Buffer[], done: (err?: Error | null) => void): void {
    const pieces = dataFrames(id, chunks);
    if (!pieces.length) return done();
    pieces.forEach((piece, i) => this.send(piece, i === pieces.length - 1 ? done : undefined));
  }

  sendFin(id: number, done: () => void): void {
    this.send(finFrame(id), done);
  }

  reset(id: number): void {
    this.forget(id);
    if (this.failed || !this.transport.writable) return;
    const body = Buffer.alloc(8);
    body.writeUInt32BE(id, 0);
    body.writeUInt32BE(RST_CANCEL, 4);
    this.send(controlFrame(FRAME.rstStream, 0, body));
  }

  /**
   * Writes to the transport, corked until the end of the tick: what the streams write in one go
   * (a new connection's two SYN_STREAMs and the error stream's FIN; a data frame's header and
   * payload; the connections opened while a session was being dialled) reaches it as one
   * writev, which the WebSocket sends as few messages.
   */
  private send(bytes: Buffer, done?: (err?: Error | null) => void): void {
    this.corkForTick();
    this.transport.write(bytes, done);
  }

  forget(id: number): void {
    this.streams.delete(id);
    this.resume(id);
  }

  /**
   * The transport is paused while any stream's reader is behind, and resumed once none is:
   * SPDY here has no window per stream, so one stream that is not read holds up the others
   * (as in kubectl's port-forward) rather than being buffered without bound.
   */
  pause(id: number): void {
    this.behind.add(id);
    this.transport.pause();
  }

  resume(id: number): void {
    this.behind.delete(id);
    if (this.behind.size === 0) this.transport.resume();
  }

  close(): void {
    this.transport.end();
  }

  /** Parses frames as bytes arrive; a data frame's payload is passed on piece by piece. */
  private receive(chunk: Buffer): void {
    let offset = 0;
    while (offset < chunk.length && !this.failed) {
      if (!this.frame) {
        const take = chunk.subarray(offset, offset + HEADER_LENGTH - this.headerBytes.length);
        offset += take.length;
        this.headerBytes = Buffer.concat([this.headerBytes, take]);
        if (this.headerBytes.length < HEADER_LENGTH) return;
        const header = this.headerBytes;
        this.headerBytes = Buffer.alloc(0);
        const length = header.readUInt32BE(4) & 0xffffff;
        if (header[0]! & CONTROL_BIT) {
          if ((header.readUInt16BE(0) & 0x7fff) !== VERSION) return this.protocolError('not SPDY/3');
          if (length > MAX_CONTROL_BODY) return this.protocolError(`a control frame of ${length} bytes`);
        }
        this.frame = { header, remaining: length, body: [] };
      } else {
        const take = chunk.subarray(offset, offset + this.frame.remaining);
        offset += take.length;
        this.frame.remaining -= take.length;
        if (this.frame.header[0]! & CONTROL_BIT) this.frame.body.push(take);
        else if (take.length) this.streams.get(this.frame.header.readUInt32BE(0) & 0x7fffffff)?.receive(take);
      }
      if (this.frame.remaining === 0) {
        const { header, body } = this.frame;
        this.frame = undefined;
        this.frameEnd(header, Buffer.concat(body));
      }
    }
  }

  private frameEnd(header: Buffer, body: Buffer): void {
    const flags = header[4]!;
    if (!(header[0]! & CONTROL_BIT)) {
      if (flags & FLAG_FIN) this.streams.get(header.readUInt32BE(0) & 0x7fffffff)?.receiveFin();
      return;
    }
    const type = header.readUInt16BE(2);
    const expected = BODY_LENGTH[type];
    if (expected && (expected.exact ? body.length !== expected.bytes : body.length < expected.bytes)) {
      return this.protocolError(`a frame of type ${type} with a body of ${body.length} bytes`);
    }
    if (type === FRAME.synReply) {
      const stream = this.streams.get(body.readUInt32BE(0) & 0x7fffffff);
      stream?.replied();
      if (flags & FLAG_FIN) stream?.receiveFin();
    } else if (type === FRAME.rstStream) {
      const id = body.readUInt32BE(0) & 0x7fffffff;
      const status = body.readUInt32BE(4);
      this.streams.get(id)?.destroy(new Error(`the server reset SPDY stream ${id} (status ${status})`));
    } else if (type === FRAME.ping) {
      // the server's ping, answered unless the answers to earlier ones are still waiting
      if (this.transport.writableLength < MAX_UNSENT_FOR_PING) this.send(controlFrame(FRAME.ping, 0, body));
    } else if (type === FRAME.goAway) {
      this.closeAll(new Error('the server ended the SPDY session (GOAWAY)'));
    }
    // SYN_REPLY headers, SETTINGS, WINDOW_UPDATE and HEADERS carry nothing this client needs.
  }

  /** Fails every stream with the error and closes the connection. */
  private protocolError(message: string): void {
    this.failed = true;
    this.frame = undefined;
    this.closeAll(new Error(`SPDY protocol error: ${message}`));
    this.transport.destroy();
  }

  private closeAll(err: Error | undefined): void {
    for (const stream of this.streams.values()) {
      if (stream.peerEnded) continue; // it has all its data; only its own side was still open
      // One the peer never replied to never reached it: said so, a caller may send it elsewhere.
      if (err && !stream.wasReplied) stream.destroy(new Error(`${NO_REPLY}: ${err.message}`));
      else if (err) stream.destroy(err);
      else stream.receiveFin();
    }
    this.streams.clear();
    if (this.ended) return;
    this.ended = true;
    this.closeListeners.splice(0).forEach((listener) => listener());
  }
}

/** One SPDY stream as a Duplex: writes become data frames, `end()` a FIN; 'reply' on the peer's SYN_REPLY. */
export class SpdyStream extends Duplex {
  private finished = false;
  private gotReply = false;
  private endGate: (() => Promise<void>) | undefined;

  constructor(
    private readonly session: SpdySession,
    readonly id: number,
  ) {
    super({ readableHighWaterMark: 1 << 20, writableHighWaterMark: 1 << 20 });
  }

  /** The peer's SYN_REPLY arrived: it accepted the stream ('reply' is emitted). */
  replied(): void {
    this.gotReply = true;
    this.emit('reply');
  }

  /** Whether the peer accepted the stream (its SYN_REPLY arrived). */
  get wasReplied(): boolean {
    return this.gotReply;
  }

  /** Whether the peer's FIN arrived: all its data is in. */
  get peerEnded(): boolean {
    return this.finished;
  }

  /** Data from the peer; after its FIN, or once destroyed, there is nowhere for it to go. */
  receive(data: Buffer): void {
    if (this.finished || this.destroyed) return;
    if (!this.push(data)) this.session.pause(this.id);
  }

  receiveFin(): void {
    if (this.finished || this.destroyed) return;
    this.finished = true;
    // No more data can come for it: it no longer holds up the connection, read or not.
    this.session.resume(this.id);
    if (!this.endGate) return void this.push(null);
    void this.endGate().then(() => this.destroyed || this.push(null));
  }

  /**
   * The peer's end is passed on only once the promise `gate` gives when it arrives has settled
   * (and only if the stream was not destroyed by then).
   */
  endAfter(gate: () => Promise<void>): void {
    this.endGate = gate;
  }

  override _read(): void {
    this.session.resume(this.id);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.session.sendData(this.id, [chunk], callback);
  }

  override _writev(chunks: { chunk: Buffer }[], callback: (err?: Error | null) => void): void {
    this.session.sendData(
      this.id,
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  override _final(callback: () => void): void {
    this.session.sendFin(this.id, callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (!this.finished || !this.writableFinished) this.session.reset(this.id);
    else this.session.forget(this.id);
    callback(err);
  }
}
