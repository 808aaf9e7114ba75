// The HTTP/1 router's upstream connections: a keep-alive pool per destination whose
// connections may be HTTP/2 streams through the manager rather than sockets.
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';

/**
 * Makes a stream that is not a socket (an HTTP/2 stream through the manager) fit for Node's
 * HTTP client: what the client calls on a socket and the stream lacks does nothing.
 */
export function prepare(stream: Duplex): Duplex {
  if (!(stream instanceof net.Socket)) {
    // Node's HTTP client writes a request's head as a latin1 string, corked with its body: an
    // HTTP/2 stream's writev of strings and buffers together sent a garbled head (Node 20), so
    // streams that are not sockets (the manager's CONNECT streams) take one chunk at a time.
    Object.assign(stream, { _writev: null });
    // The pool refs and unrefs its sockets; a stream may have no such methods.
    if (!('ref' in stream)) Object.assign(stream, { ref: () => undefined, unref: () => undefined });
  }
  return stream;
}

/**
 * A keep-alive pool of connections to one destination, each opened by `open`. The streams it
 * gets need not be sockets (an HTTP/2 stream through the manager): what Node's agent calls on a
 * socket and they lack does nothing.
 */
export class Pool extends http.Agent {
  private retired = false;

  constructor(
    private readonly open: () => Duplex,
    maxSockets?: number,
  ) {
    super({ keepAlive: true, maxSockets });
  }

  override createConnection(): Duplex {
    const stream = prepare(this.open());
    // The far end closed it (an idle one, typically): so do we, and the pool forgets it.
    stream.once('end', () => stream.end());
    return stream;
  }

  override keepSocketAlive(): boolean {
    return !this.retired;
  }

  /** Closes the idle connections now, and each busy one once its request is done. */
  retire(): void {
    this.retired = true;
    for (const sockets of Object.values(this.freeSockets))
      for (const socket of sockets ?? []) socket.destroy();
  }
}
