// The agent's readiness endpoint, which the kubelet probes (an httpGet readinessProbe on the
// health port). It listens from the agent's first moment and holds each probe until the agent
// is registered with the manager, then answers 200. A TCP probe of a port opened only once
// registered would fail when it came a moment early, and the kubelet asks again only a period
// later (a second, the least it allows): a held probe passes as soon as the agent is ready.
import http from 'node:http';

/** What the readiness endpoint answers before the agent is registered: nothing yet, held. */
export interface Readiness {
  server: http.Server;
  /** Marks the agent ready: held probes and every later one are answered 200. */
  ready(): void;
}

/**
 * Serves readiness on `port`. A probe held longer than `holdMs` (longer than the probe's own
 * timeout) is answered 503, so an endpoint that anyone in the cluster can reach holds no
 * connection for long.
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
