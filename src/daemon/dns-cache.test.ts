// Proves the DNS cache keeps positive answers for their TTL (capped), counts TTLs down, and
// never keeps failures.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Packet } from 'dns-packet';
import { DnsCache } from './dns-cache.ts';

const answer = (ttl: number, rcode = 'NOERROR'): Packet =>
  ({
    type: 'response',
    rcode,
    answers: [{ name: 'svc.ns.svc.cluster.local', type: 'A', ttl, data: '10.96.0.5' }],
  }) as Packet;

test('a positive answer is served until its TTL has passed, with the TTL counted down', () => {
  let now = 0;
  const cache = new DnsCache(() => now);
  cache.put('Svc.ns.svc.cluster.local', 'A', answer(5));
  now = 2000;
  const first = cache.get('svc.ns.svc.cluster.local', 'A')?.answers?.[0];
  assert.equal(first && 'ttl' in first ? first.ttl : undefined, 3);
  assert.equal(cache.get('svc.ns.svc.cluster.local', 'AAAA'), undefined);
  now = 5000;
  assert.equal(cache.get('svc.ns.svc.cluster.local', 'A'), undefined);
});

test('TTLs are capped at 30 s; failures and empty answers are not kept', () => {
  let now = 0;
  const cache = new DnsCache(() => now);
  cache.put('a', 'A', answer(3600));
  now = 30_000;
  assert.equal(cache.get('a', 'A'), undefined);
  cache.put('b', 'A', answer(5, 'NXDOMAIN'));
  cache.put('c', 'A', { type: 'response', rcode: 'NOERROR', answers: [] } as unknown as Packet);
  cache.put('d', 'A', answer(0));
  for (const name of ['b', 'c', 'd']) assert.equal(cache.get(name, 'A'), undefined);
});
