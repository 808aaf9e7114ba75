// Proves API refusals and unreachable servers become plain messages.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TelepodError } from '../protocol/errors.ts';
import { explainKubeError } from './errors.ts';

test('a 403 carries the API server message naming verb and resource', () => {
  const body = JSON.stringify({
    message: 'namespaces is forbidden: User "dev" cannot list resource "namespaces"',
  });
  const err = explainKubeError({ code: 403, body }, 'https://api:6443');
  assert.ok(err instanceof TelepodError);
  assert.equal(
    err.message,
    'not allowed: namespaces is forbidden: User "dev" cannot list resource "namespaces"',
  );
});

test('connection failures name the server', () => {
  const err = explainKubeError(
    new Error('request failed, reason: connect ECONNREFUSED 10.0.0.1:6443'),
    'https://10.0.0.1:6443',
  );
  assert.match(err.message, /^cannot reach the API server https:\/\/10\.0\.0\.1:6443: /);
});

test('other errors pass through', () => {
  const original = new Error('something else');
  assert.equal(explainKubeError(original, 'x'), original);
});
