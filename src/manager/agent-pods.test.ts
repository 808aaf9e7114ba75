// Proves the agent pod check: a burst of streams from a new agent asks the API server for its pod
// once, and what the read showed (an agent and its container's mounts, or not) is remembered for
// a minute; a read that failed refuses the stream and is not remembered; a pod of the same name
// but another UID is not the token's; a pod listing too many mount paths is refused and takes
// no room from the agents remembered; past its bounds the check forgets its oldest entries.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AGENT_CONFIG_ENV, AGENT_CONTAINER, AGENT_TOKEN_DIR } from '../protocol/intercept.ts';
import { Unauthenticated } from './agent-auth.ts';
import { AgentPods } from './agent-pods.ts';
import { bound, fakeApi, signer, token } from './agent-token.fixture.ts';

const injection = { id: 'inj-1', namespace: 'a' };

/**
 * The cluster: its key set and pod `a/web-1`, as `pod()` says it is now (by default uid `u-1`,
 * the token's, carrying the agent of `inj-1` with a mount at `/data`), or no answer for it while
 * `down()`. The agent pods' clock is `clock.now`.
 */
async function cluster(
  pod = (): { uid: string; injection: string; mounts?: string[] } => ({
    uid: 'u-1',
    injection: injection.id,
  }),
  down = () => false,
) {
  const key = await signer('k1');
  let podGets = 0;
  const { api } = fakeApi(
    () => [key.jwk],
    async (path) => {
      assert.equal(path, '/api/v1/namespaces/a/pods/web-1');
      podGets++;
      await new Promise((resolve) => setImmediate(resolve)); // the API server answers later
      if (down()) throw new Error('connect ECONNREFUSED');
      const { uid, injection: id, mounts = ['/data'] } = pod();
      const config = JSON.stringify({ injection: id });
      return {
        metadata: { name: 'web-1', namespace: 'a', uid },
        spec: {
          containers: [
            { name: 'app' },
            {
              name: AGENT_CONTAINER,
              env: [{ name: AGENT_CONFIG_ENV, value: config }],
              volumeMounts: [
                ...mounts.map((mountPath, i) => ({ name: `v${i}`, mountPath })),
                { name: 'telepod-agent-bundle', mountPath: '/opt/telepod-agent' },
                { name: 'telepod-agent-token', mountPath: AGENT_TOKEN_DIR },
              ],
            },
          ],
        },
      };
    },
  );
  const clock = { now: 1_000_000 };
  const pods = new AgentPods(api, () => clock.now);
  return { pods, clock, podGets: () => podGets, authorization: `Bearer ${await token(key, bound)}` };
}

test('a burst of streams from an agent asks for its pod once, and later ones not for a minute', async () => {
  const { pods, clock, podGets, authorization } = await cluster();
  const burst = await Promise.all(Array.from({ length: 200 }, () => pods.agentOf(injection, authorization)));
  assert.ok(burst.every((found) => found.injection === injection));
  assert.deepEqual(burst[0]!.mounts, ['/data'], "the agent container's mounts, without its own");
  assert.equal(podGets(), 1);
  clock.now += 59_000;
  assert.deepEqual(await pods.agentOf(injection, authorization), { injection, mounts: ['/data'] });
  assert.equal(podGets(), 1);
  clock.now += 2_000;
  assert.equal((await pods.agentOf(injection, authorization)).injection, injection);
  assert.equal(podGets(), 2);
});

test('a pod without the injection’s agent is refused to the whole burst, and then from memory', async () => {
  const { pods, podGets, authorization } = await cluster(() => ({ uid: 'u-1', injection: 'another' }));
  const burst = await Promise.allSettled(
    Array.from({ length: 50 }, () => pods.agentOf(injection, authorization)),
  );
  assert.ok(burst.every((r) => r.status === 'rejected' && r.reason instanceof Unauthenticated));
  assert.equal(podGets(), 1);
  await assert.rejects(pods.agentOf(injection, authorization), Unauthenticated);
  assert.equal(podGets(), 1);
});

test('a pod of the token’s name but another UID is not the token’s', async () => {
  const { pods, authorization } = await cluster(() => ({ uid: 'u-2', injection: injection.id }));
  await assert.rejects(pods.agentOf(injection, authorization), /is not an agent of a current intercept/);
});

test('a failed read of the pod refuses the stream and is asked again next time', async () => {
  let down = true;
  const { pods, podGets, authorization } = await cluster(undefined, () => down);
  await assert.rejects(pods.agentOf(injection, authorization), /cannot be checked now: connect ECONNREFUSED/);
  down = false;
  assert.equal((await pods.agentOf(injection, authorization)).injection, injection);
  assert.equal(podGets(), 2);
});

test('a refusal is remembered for a minute, then the pod is read again', async () => {
  let id = 'another';
  const { pods, clock, podGets, authorization } = await cluster(() => ({ uid: 'u-1', injection: id }));
  await assert.rejects(pods.agentOf(injection, authorization), Unauthenticated);
  id = injection.id; // a pod's containers cannot change; this stands for the memory's expiry
  clock.now += 59_000;
  await assert.rejects(pods.agentOf(injection, authorization), Unauthenticated);
  clock.now += 2_000;
  assert.equal((await pods.agentOf(injection, authorization)).injection, injection);
  assert.equal(podGets(), 2);
});

test('a pod whose agent lists more mount paths than telepod keeps (64 KiB) is not believed an agent', async () => {
  const many = Array.from({ length: 2_000 }, (_, i) => `/m/${String(i).padStart(20, '0')}`);
  const { pods, authorization } = await cluster(() => ({
    uid: 'u-1',
    injection: injection.id,
    mounts: many,
  }));
  await assert.rejects(pods.agentOf(injection, authorization), /is not an agent of a current intercept/);
});

/** `n` mount paths of 23 characters: 78 bytes each as the check counts them, and 64 more in all. */
const paths = (n: number) => Array.from({ length: n }, (_, i) => `/m/${String(i).padStart(20, '0')}`);
/** Mounts just under the 64 KiB a pod may list (64,024 bytes); 65 of them fit in the 4 MiB. */
const NEARLY_FULL = paths(820);

/**
 * A cluster whose one pod carries the agent of whichever injection is asked for, with the
 * mounts `mounts(id)`; `ask(id)` asks for injection `id` and settles either way.
 */
async function clusterOfAgents(mounts: (id: string) => string[]) {
  let asked = '';
  const found = await cluster(() => ({ uid: 'u-1', injection: asked, mounts: mounts(asked) }));
  const ask = (id: string) => {
    asked = id;
    return found.pods.agentOf({ id, namespace: 'a' }, found.authorization).then(
      () => true,
      () => false,
    );
  };
  return { ...found, ask };
}

test('a pod refused for too many mount paths does not make the check forget the agents it knows', async () => {
  const { podGets, ask } = await clusterOfAgents((id) => (id === 'big' ? paths(5_000) : NEARLY_FULL));
  const known = Array.from({ length: 60 }, (_, i) => `inj-${i}`); // 3.7 MiB of mounts
  for (const id of known) assert.ok(await ask(id));
  assert.equal(await ask('big'), false); // 380 KiB: 3.7 + 0.4 MiB would not have fit
  assert.equal(podGets(), 61);
  for (const id of known) assert.ok(await ask(id));
  assert.equal(podGets(), 61, 'the known agents are still answered from memory');
});

test('an agent read again each minute for an hour does not make the check forget the others', async () => {
  const { podGets, ask, clock } = await clusterOfAgents((id) => (id === 'small' ? ['/data'] : NEARLY_FULL));
  for (let minute = 0; minute < 65; minute++) {
    assert.ok(await ask('big')); // 65 reads of 64,024 bytes, one entry: 4,161,560 if each counted
    clock.now += 61_000;
  }
  assert.ok(await ask('small'));
  clock.now += 30_000;
  assert.ok(await ask('big')); // a 66th: past 4 MiB if each read had counted
  assert.equal(podGets(), 67);
  assert.ok(await ask('small')); // read 30 s ago
  assert.equal(podGets(), 67, 'the other agent is still answered from memory');
});

test('past 4 MiB of mounts, the agents remembered longest are forgotten first, one at a time', async () => {
  const { podGets, ask } = await clusterOfAgents(() => NEARLY_FULL);
  const agents = Array.from({ length: 66 }, (_, i) => `inj-${i}`); // the 66th does not fit
  for (const id of agents) assert.ok(await ask(id));
  assert.equal(podGets(), 66);
  for (const id of agents.slice(1)) assert.ok(await ask(id));
  assert.equal(podGets(), 66, 'all but the first are still answered from memory');
  assert.ok(await ask('inj-0'));
  assert.equal(podGets(), 67, 'the first was forgotten');
});
