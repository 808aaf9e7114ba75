// What the agent does when its pod is deleted (SIGTERM): it keeps serving while the cluster
// takes the pod out of its Services — the EndpointSlice changes at once, but kube-proxy on each
// node follows it a moment later, and a connection sent meanwhile to an agent that has already
// exited is refused. Then it stops accepting and leaves once its connections have ended, or
// when the pod's grace period is nearly over.
import type net from 'node:net';

export interface DrainTimes {
  /** How long new connections are still accepted after SIGTERM. */
  serveMs: number;
  /** When the agent leaves even with connections still open. */
  maxMs: number;
}

/**
 * Long enough for kube-proxy to follow; a request in flight gets 10 s to finish (kept-alive
 * connections would otherwise hold every pod of a restore, one by one for a StatefulSet).
 */
export const DRAIN: DrainTimes = { serveMs: 3_000, maxMs: 10_000 };

/**
 * Drains `servers` (all the agent's listeners, asked for when the drain starts): accepting for
 * `serveMs`, then closed; `exit` is called once every server has closed (its connections
 * ended) or at `maxMs`, whichever is first.
 */
export function drain(servers: () => net.Server[], exit: () => void, times: DrainTimes = DRAIN): void {
  let left = false;
  const leave = () => {
    if (left) return;
    left = true;
    exit();
  };
  setTimeout(leave, times.maxMs).unref();
  setTimeout(() => {
    const open = servers().filter((s) => s.listening);
    let closing = open.length;
    if (!closing) return leave();
    for (const server of open) server.close(() => --closing === 0 && leave());
  }, times.serveMs).unref();
}
