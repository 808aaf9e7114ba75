// Dead connections are noticed: a peer that vanishes without closing (its pod deleted while a
// Service still sent packets to its old address, a port-forward black-holed) leaves a TCP
// connection that never errors. Every long-lived HTTP/2 session of telepod pings its peer and
// destroys the session when pings go unanswered, so that its owner reconnects.
import type http2 from 'node:http2';

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
