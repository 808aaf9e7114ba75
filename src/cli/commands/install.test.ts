// `install --agent-idle`: the times it takes and refuses, and what it puts in the manager's
// Deployment (nothing when not chosen, so a default install's spec stays the same).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { managerObjects, type InClusterBundles } from '../../kube/manager-install.ts';
import { AGENT_IDLE_ENV } from '../../protocol/intercept.ts';
import { TelepodError } from '../../protocol/errors.ts';
import { parseIdleTime } from './install.ts';

test('--agent-idle takes seconds, minutes, hours or 0, up to a day', () => {
  assert.equal(parseIdleTime('90s'), 90);
  assert.equal(parseIdleTime('15m'), 900);
  assert.equal(parseIdleTime('2h'), 7200);
  assert.equal(parseIdleTime('24h'), 86_400);
  assert.equal(parseIdleTime('0'), 0);
  assert.equal(parseIdleTime('0s'), 0);
});

test('--agent-idle refuses anything else with a usage error naming the value', () => {
  for (const bad of ['', '5', '5x', '-1m', '1.5h', '25h', '1441m', '1d', '15 m', '0x10s', '9999999s']) {
    assert.throws(
      () => parseIdleTime(bad),
      (err: unknown) => err instanceof TelepodError && err.message.startsWith(`--agent-idle ${bad}: `),
      bad,
    );
  }
});

test("the chosen idle time reaches the manager's environment; without one the Deployment has none", () => {
  const bundles: InClusterBundles = { 'manager.mjs': '', 'agent.mjs': '' };
  const envOf = (agentIdleSeconds?: number) =>
    managerObjects(bundles, { image: 'node', namespace: 'telepod', agentIdleSeconds }).deployment.spec!
      .template.spec!.containers[0]!.env!;
  assert.deepEqual(
    envOf(120).filter((e) => e.name === AGENT_IDLE_ENV),
    [{ name: AGENT_IDLE_ENV, value: '120' }],
  );
  assert.deepEqual(
    envOf(0).filter((e) => e.name === AGENT_IDLE_ENV),
    [{ name: AGENT_IDLE_ENV, value: '0' }],
  );
  assert.equal(
    envOf().some((e) => e.name === AGENT_IDLE_ENV),
    false,
  );
});
