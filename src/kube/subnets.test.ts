// Proves the --also-proxy/--never-proxy arithmetic and CIDR validation.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { applyProxyFlags, isCidr } from './subnets.ts';

test('also-proxy adds, never-proxy removes equal and contained subnets', () => {
  assert.deepEqual(
    applyProxyFlags(['10.96.0.0/16', '10.244.0.0/16'], ['192.168.7.0/24'], ['10.244.0.0/14']),
    ['10.96.0.0/16', '192.168.7.0/24'],
  );
  assert.deepEqual(applyProxyFlags(['10.96.0.0/16'], [], ['10.96.1.0/24']), ['10.96.0.0/16']);
});

test('CIDR validation', () => {
  assert.ok(isCidr('10.0.0.0/8'));
  assert.ok(!isCidr('10.0.0.0'));
  assert.ok(!isCidr('10.0.0.0/33'));
  assert.ok(!isCidr('nonsense/8'));
});
