// The agent's readiness endpoint (`GET /ready` on its health port), which its postStart hook
// asks (src/manager/agent-start-hook.ts): it listens from the agent's first moment and holds
// each ask until the agent is registered with the manager and listens, then answers 200. The
// kubelet reports the agent running, and ready, once the hook has its 200: at once, where a
// probe of a port opened only then could come a moment early and wait a period for the next.
import http from 'node:http';

/** The readiness endpoint: asks before the agent is registered are held, not answered. */
export interface Readiness {
  server: http.Server;
  /** Marks the agent ready: held asks and every later one are answered 200. */
  ready(): void;
}

/**
 * Serves readiness on `port`. An ask held longer than `holdMs` is answered 503 (the hook asks
 * again), so an endpoint that anyone in the cluster can reach holds no connection for long.
 */
export function serveReadiness(port: number, holdMs = 15_000): Readiness {
  let isReady = false;
  const held = new Set<http.ServerResponse>();
  const answer = (res: http.ServerResponse, status: number) => {
    held.delete(res);
    res.writeHead(status, { 'content-type': 'text/plain', connection: 'close' });
    res.end(status === 200 ? 'ready\n' : 'not registered with the traffic manager yet\n');
  };
  const server = http.createServer({ requestTimeout: holdMs, headersTimeout: holdMs }, (req, res) => {
    req.resume(); // a body, if any, is not read
    if (isReady) return answer(res, 200);
    held.add(res);
    const timer = setTimeout(() => held.has(res) && answer(res, 503), holdMs);
    res.once('close', () => {
      clearTimeout(timer);
      held.delete(res);
    });
  });
  server.listen(port);
  return {
    server,
    ready() {
      isReady = true;
      for (const res of [...held]) answer(res, 200);
    },
  };
}
