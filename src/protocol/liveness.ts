// Dead connections are noticed, and cut transfers look cut: a peer that vanishes without
// closing (its pod deleted while a Service still sent packets to its old address, a
// port-forward black-holed) leaves a TCP connection that never errors, so every long-lived
// HTTP/2 session of telepod pings its peer and destroys the session when pings go unanswered;
// and a stream that dies with its session resets the socket it feeds.
import type http2 from 'node:http2';
import { Socket } from 'node:net';
import { addAbortSignal, type Duplex } from 'node:stream';

/** What a stream reset by `reset` fails with, at both ends. */
const RESET_REASON = 'the other end of the connection failed';

/**
 * Pings `session` every `intervalMs` until it closes; destroys it when `misses` pings in a row
 * went unanswered. A ping's answer queues behind data already sent, so a slow link needs a
 * longer patience than a pod network.
 */
export function keepAlive(session: http2.Http2Session, intervalMs: number, misses: number): void {
  let unanswered = 0;
  const timer = setInterval(() => {
    if (session.destroyed || session.closed) return clearInterval(timer);
    if (unanswered >= misses) {
      clearInterval(timer);
      return void session.destroy(new Error(`no answer to pings for ${(misses * intervalMs) / 1000} s`));
    }
    unanswered++;
    try {
      session.ping((err) => {
        if (!err) unanswered = 0;
      });
    } catch {
      // not connected yet: counts as unanswered
    }
  }, intervalMs);
  timer.unref();
  session.once('close', () => clearInterval(timer));
}

/**
 * Whether a closed stream ended as its sender meant it to (its end arrived, no reset). A stream
 * cut by a dying connection did not: the socket it feeds must then be reset, never just closed,
 * so that the client sees a failed transfer rather than a complete one.
 */
export function endedCleanly(stream: http2.Http2Stream): boolean {
  return !stream.rstCode && stream.readableEnded;
}

/**
 * Ends a socket as failed: a connected one is reset (RST), so its peer sees an error rather
 * than an end; one still connecting is simply destroyed (a reset would wait for the connection),
 * and so is one already ended: its FIN is out, and a reset then fails (EINVAL) without ever
 * closing the socket.
 */
export function abort(socket: Socket): void {
  if (socket.connecting || socket.destroyed || socket.writableEnded) socket.destroy();
  else socket.resetAndDestroy();
}

/**
 * Resets `stream` (RST_STREAM, no END_STREAM) so that its peer sees a failed transfer. Node's own
 * `stream.close(code)` is not that: it ends the writable side first, so a peer whose own side had
 * already ended gets END_STREAM, and the reset that follows finds the stream closed: a clean end.
 * By default the code is INTERNAL_ERROR (destroying with an error): a Node peer then emits
 * 'error' and no 'end', so nothing it pipes into is ended as if complete (on CANCEL it emits
 * 'end' first). `cancel` sends CANCEL instead, through an AbortSignal (Node's only way to send it
 * without END_STREAM): what HTTP/2 apps and gRPC take as a cancelled request, and what a Node
 * server without an 'error' listener on its streams survives. This end's 'error' listeners run;
 * one is added so that a stream without any does not throw. A stream already closed is left as
 * it is (its 'error' listeners would take a clean end for a failure).
 */
export function reset(stream: http2.Http2Stream, code: 'error' | 'cancel' = 'error'): void {
  if (stream.closed || stream.destroyed) return; // its end or reset is out: nothing to send
  stream.once('error', () => undefined);
  if (code === 'error') return void stream.destroy(new Error(RESET_REASON));
  const abort = new AbortController();
  addAbortSignal(abort.signal, stream);
  abort.abort();
}

/** Ends a connection of either kind as failed: a socket is reset (`abort`), a stream too (`reset`). */
export function failConnection(connection: Duplex): void {
  if (connection instanceof Socket) abort(connection);
  else if ('rstCode' in connection)
    reset(connection as http2.Http2Stream); // node:http2 exports no class
  else connection.destroy();
}
