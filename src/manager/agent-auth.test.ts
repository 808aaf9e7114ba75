// Proves the agent authenticator: a token signed by the cluster's key, for telepod's audience
// and bound to a pod, names that pod; any other token is refused; rotated keys are refetched.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AgentAuthenticator, Unauthenticated } from './agent-auth.ts';
import { bound, fakeApi, signer, token } from './agent-token.fixture.ts';
import type { KubeApi } from './kube-api.ts';

test('a pod-bound token for the agent audience names its pod', async () => {
  const key = await signer('k1');
  const { api } = fakeApi(() => [key.jwk]);
  const auth = new AgentAuthenticator(api);
  const pod = await auth.verify(`Bearer ${await token(key, bound)}`);
  assert.deepEqual(pod, { namespace: 'a', name: 'web-1', uid: 'u-1' });
});

test('other audiences, other signers, unbound tokens and garbage are refused', async () => {
  const key = await signer('k1');
  const stranger = await signer('k1');
  const auth = new AgentAuthenticator(fakeApi(() => [key.jwk]).api);
  const refused = [
    `Bearer ${await token(key, bound, 'https://kubernetes.default.svc')}`,
    `Bearer ${await token(stranger, bound)}`,
    `Bearer ${await token(key, { 'kubernetes.io': { namespace: 'a' } })}`,
    'Bearer x.y.z',
    'Bearer ',
    'Basic abc',
    undefined,
  ];
  for (const authorization of refused) {
    await assert.rejects(auth.verify(authorization), Unauthenticated, String(authorization).slice(0, 40));
  }
});

test('a token signed by a new key fetches the key set again', async () => {
  const old = await signer('k1');
  const next = await signer('k2');
  let keys = [old.jwk];
  const { api, fetches } = fakeApi(() => keys);
  let now = 1_000_000;
  const auth = new AgentAuthenticator(api, () => now);
  await auth.verify(`Bearer ${await token(old, bound)}`);
  keys = [old.jwk, next.jwk];
  now += 20_000;
  const pod = await auth.verify(`Bearer ${await token(next, bound)}`);
  assert.equal(pod.uid, 'u-1');
  assert.equal(fetches(), 2);
});

test('a burst of tokens naming unknown keys fetches the key set once; a failed fetch is a 401', async () => {
  const key = await signer('k1');
  const stranger = await signer('unknown');
  const { api, fetches } = fakeApi(() => [key.jwk]);
  const auth = new AgentAuthenticator(api);
  const forged = `Bearer ${await token(stranger, bound)}`;
  const burst = await Promise.allSettled(Array.from({ length: 200 }, () => auth.verify(forged)));
  assert.ok(burst.every((r) => r.status === 'rejected' && r.reason instanceof Unauthenticated));
  assert.equal(fetches(), 1);
  const failing = new AgentAuthenticator({
    get: () => Promise.reject(new Error('down')),
  } as unknown as KubeApi);
  await assert.rejects(failing.verify(`Bearer ${await token(key, bound)}`), Unauthenticated);
});
