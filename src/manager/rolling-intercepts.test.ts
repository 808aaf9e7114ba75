// The intercepts held while their rollout runs: a session's end marks only its own, and the
// request learns of it once, when the rollout is over.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RollingIntercepts } from './rolling-intercepts.ts';

test("a session's end marks its rolling intercepts, which its request learns of once", () => {
  const rolling = new RollingIntercepts();
  rolling.start('a', 'session-1');
  rolling.start('b', 'session-2');
  assert.equal(rolling.has('a'), true);
  rolling.endSession('session-1');
  assert.equal(rolling.finish('a'), true);
  assert.equal(rolling.has('a'), false);
  assert.equal(rolling.finish('a'), false);
  assert.equal(rolling.finish('b'), false);
  assert.equal(rolling.has('b'), false);
});
