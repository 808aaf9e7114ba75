// Proves the error type carries its exit code and message.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ExitCode, TelepodError, usageError } from './errors.ts';

test('TelepodError defaults to the failure exit code', () => {
  const err = new TelepodError('cluster unreachable');
  assert.equal(err.exitCode, ExitCode.failure);
  assert.equal(err.message, 'cluster unreachable');
  assert.ok(err instanceof Error);
});

test('usageError exits 2', () => {
  assert.equal(usageError('bad --port').exitCode, ExitCode.usage);
});
