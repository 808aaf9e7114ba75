// Dead connections are noticed, and cut transfers look cut: a peer that vanishes without
// closing (its pod deleted while a Service still sent packets to its old address, a
// port-forward black-holed) leaves a TCP connection that never errors, so every long-lived
// HTTP/2 session of telepod pings its peer and destroys the session when pings go unanswered;
// and a stream that dies with its session resets the socket it feeds.
import type http2 from 'node:http2';
import type { Socket } from 'node:net';

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
