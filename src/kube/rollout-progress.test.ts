// How a workload's rollout is described while an intercept waits for it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeRollout, type WorkloadRolloutState } from './rollout-progress.ts';

const deployment = (
  generation: number,
  replicas: number,
  status: WorkloadRolloutState['status'],
): WorkloadRolloutState => ({
  kind: 'Deployment',
  metadata: { name: 'echo', generation },
  spec: { replicas },
  status,
});

test('nothing is said until the workload changed', () => {
  assert.equal(describeRollout(deployment(3, 2, { updatedReplicas: 2, readyReplicas: 2 }), 3), undefined);
});

test('a rollout in progress counts updated and ready pods', () => {
  assert.equal(
    describeRollout(
      deployment(4, 2, { observedGeneration: 4, replicas: 3, updatedReplicas: 1, readyReplicas: 2 }),
      3,
    ),
    'rolling out deployment/echo: 1 of 2 pods updated, 2 old pods still running',
  );
  // Not yet observed by the controller: still rolling out, even if the counts look done.
  assert.equal(
    describeRollout(
      deployment(4, 1, { observedGeneration: 3, replicas: 1, updatedReplicas: 1, readyReplicas: 1 }),
      3,
    ),
    'rolling out deployment/echo: 1 of 1 pods updated, 1 ready',
  );
});

test('a finished rollout waits for the agent; a workload scaled to 0 says how many pods are left', () => {
  assert.equal(
    describeRollout(
      deployment(4, 2, { observedGeneration: 4, replicas: 2, updatedReplicas: 2, readyReplicas: 2 }),
      3,
    ),
    'waiting for the telepod agent of deployment/echo',
  );
  assert.equal(
    describeRollout(deployment(4, 0, { observedGeneration: 4, replicas: 1 }), 3),
    'scaling deployment/echo to 0 (1 pod left)',
  );
});
