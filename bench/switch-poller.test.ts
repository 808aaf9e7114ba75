// Unit test: a poll's answers and failures are counted in the phase they started in.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { failuresByPhase } from './switch-poller.ts';

test('answers and failures land in the phase begun last before them', () => {
  const marks = [
    { phase: 'intercept', at: 100 },
    { phase: 'leave', at: 200 },
  ];
  const result = failuresByPhase(
    marks,
    [
      { at: 150, error: 'ECONNREFUSED' },
      { at: 160, error: 'ECONNREFUSED' },
      { at: 250, error: 'hung 3000 ms' },
    ],
    [50, 120, 210, 220],
  );
  assert.deepEqual(result, {
    before: { answered: 1, failed: 0, errors: [] },
    intercept: { answered: 1, failed: 2, errors: ['ECONNREFUSED at +50 ms', 'ECONNREFUSED at +60 ms'] },
    leave: { answered: 2, failed: 1, errors: ['hung 3000 ms at +50 ms'] },
  });
});

test('a phase without requests is still reported, with nothing in it', () => {
  assert.deepEqual(failuresByPhase([{ phase: 'restore', at: 10 }], [], []), {
    restore: { answered: 0, failed: 0, errors: [] },
  });
});
