// The agent container's postStart hook, which stands in for a readiness probe: it returns once
// the agent is registered with the manager and listens. The kubelet runs a postStart hook before
// it syncs the pod again, so it reports the agent running, and (with no probe) ready, only
// then. A readiness probe would add up to a period, a second, after that: on the testbed the
// kubelet's probe triggered by the sync that saw the containers started read the pod's previous
// status ("container not found") and the first real probe came a second later. The hook asks
// the agent's readiness endpoint (src/agent/readiness.ts), which holds the answer until then.
import { LEAN_NODE_FLAGS } from '../protocol/node-flags.ts';

/**
 * How long the hook waits at most. Then it fails, and the kubelet restarts the container: an
 * agent that cannot register is never reported ready (the rollout waits, old pods serve).
 */
const HOOK_LIMIT_MS = 60_000;

/**
 * The command of the agent's postStart hook (exec, in the agent's own image): it asks
 * 127.0.0.1:<healthPort>/ready until that answers 200 (exit 0), or fails at `limitMs`.
 */
export function readinessHookCommand(healthPort: number, limitMs = HOOK_LIMIT_MS): string[] {
  const script = `setTimeout(() => process.exit(1), ${limitMs});
const ask = () =>
  require('http')
    .get({ host: '127.0.0.1', port: ${healthPort}, path: '/ready' }, (res) =>
      res.statusCode === 200 ? process.exit(0) : res.resume().on('end', () => setTimeout(ask, 20)),
    )
    .on('error', () => setTimeout(ask, 20));
ask();`;
  return ['node', ...LEAN_NODE_FLAGS, '-e', script];
}
