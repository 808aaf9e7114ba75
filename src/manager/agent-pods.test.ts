// Proves the agent pod check: a burst of streams from a new agent asks the API server for its pod
// once, and what the read showed (an agent or not) is remembered for a while; a read that failed
// refuses the stream and is not remembered.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AGENT_CONFIG_ENV, AGENT_CONTAINER } from '../protocol/intercept.ts';
import { Unauthenticated } from './agent-auth.ts';
import { AgentPods } from './agent-pods.ts';
import { bound, signer, token } from './agent-token.fixture.ts';
import type { KubeApi } from './kube-api.ts';

const injection = { id: 'inj-1', namespace: 'a' };

/**
 * The cluster: its key set, and pod `a/web-1` (uid `u-1`) carrying the agent of `podInjection`,
 * or no answer for the pod while `down` says so.
 */
async function cluster(podInjection: string, down = () => false) {
  const key = await signer('k1');
  let podGets = 0;
  const api = {
    get: async (path: string) => {
      if (path === '/openid/v1/jwks') return { keys: [key.jwk] };
      assert.equal(path, '/api/v1/namespaces/a/pods/web-1');
      podGets++;
      await new Promise((resolve) => setImmediate(resolve)); // the API server answers later
      if (down()) throw new Error('connect ECONNREFUSED');
      const config = JSON.stringify({ injection: podInjection });
      return {
        metadata: { name: 'web-1', namespace: 'a', uid: 'u-1' },
        spec: { containers: [{ name: AGENT_CONTAINER, env: [{ name: AGENT_CONFIG_ENV, value: config }] }] },
      };
    },
  } as unknown as KubeApi;
  return { api, podGets: () => podGets, authorization: `Bearer ${await token(key, bound)}` };
}

test('a burst of streams from an agent asks for its pod once, and later ones not at all', async () => {
  const { api, podGets, authorization } = await cluster(injection.id);
  const pods = new AgentPods(api);
  const burst = await Promise.all(
    Array.from({ length: 200 }, () => pods.injectionOf(injection, authorization)),
  );
  assert.ok(burst.every((found) => found === injection));
  assert.equal(podGets(), 1);
  assert.equal(await pods.injectionOf(injection, authorization), injection);
  assert.equal(podGets(), 1);
});

test('a pod without the injection’s agent is refused to the whole burst, and then from memory', async () => {
  const { api, podGets, authorization } = await cluster('another-injection');
  const pods = new AgentPods(api);
  const burst = await Promise.allSettled(
    Array.from({ length: 50 }, () => pods.injectionOf(injection, authorization)),
  );
  assert.ok(burst.every((r) => r.status === 'rejected' && r.reason instanceof Unauthenticated));
  assert.equal(podGets(), 1);
  await assert.rejects(pods.injectionOf(injection, authorization), Unauthenticated);
  assert.equal(podGets(), 1);
});

test('a failed read of the pod refuses the stream and is asked again next time', async () => {
  let down = true;
  const { api, podGets, authorization } = await cluster(injection.id, () => down);
  const pods = new AgentPods(api);
  await assert.rejects(pods.injectionOf(injection, authorization), Unauthenticated);
  down = false;
  assert.equal(await pods.injectionOf(injection, authorization), injection);
  assert.equal(podGets(), 2);
});
