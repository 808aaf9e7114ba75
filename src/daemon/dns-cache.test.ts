// Proves the DNS cache keeps positive answers for their TTL (capped), counts TTLs down, keeps
// negative answers for their SOA's TTL or minimum, and never keeps failures.
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
  cache.put('b', 'A', answer(5, 'SERVFAIL'));
  cache.put('c', 'A', { type: 'response', rcode: 'NOERROR', answers: [] } as unknown as Packet);
  cache.put('d', 'A', answer(0));
  cache.put('e', 'A', { type: 'response', rcode: 'NXDOMAIN', answers: [] } as unknown as Packet);
  for (const name of ['b', 'c', 'd', 'e']) assert.equal(cache.get(name, 'A'), undefined, name);
});

const negative = (rcode: string, soaTtl: number, minimum: number): Packet =>
  ({
    type: 'response',
    rcode,
    answers: [],
    authorities: [
      {
        name: 'cluster.local',
        type: 'SOA',
        ttl: soaTtl,
        data: {
          mname: 'ns.dns.cluster.local',
          rname: 'hostmaster.cluster.local',
          serial: 1,
          refresh: 7200,
          retry: 1800,
          expire: 86400,
          minimum,
        },
      },
    ],
  }) as Packet;

test('negative answers with an SOA are kept for the lower of its TTL and minimum', () => {
  let now = 0;
  const cache = new DnsCache(() => now);
  cache.put('svc.ns.svc.cluster.local', 'AAAA', negative('NOERROR', 30, 5)); // no AAAA record
  cache.put('gone.ns.svc.cluster.local', 'A', negative('NXDOMAIN', 4, 60)); // no such name
  now = 3000;
  const kept = cache.get('svc.ns.svc.cluster.local', 'AAAA');
  const rcode = (packet: Packet | undefined) => (packet as { rcode?: string } | undefined)?.rcode;
  assert.equal(rcode(kept), 'NOERROR');
  assert.deepEqual(kept?.answers, []);
  const soa = kept?.authorities?.[0];
  assert.equal(soa && 'ttl' in soa ? soa.ttl : undefined, 27, 'the SOA ages too');
  assert.equal(rcode(cache.get('gone.ns.svc.cluster.local', 'A')), 'NXDOMAIN');
  now = 4000;
  assert.equal(cache.get('gone.ns.svc.cluster.local', 'A'), undefined, 'its SOA TTL was 4 s');
  now = 5000;
  assert.equal(cache.get('svc.ns.svc.cluster.local', 'AAAA'), undefined, 'its SOA minimum was 5 s');
});

test('an OPT record is not replayed from the cache, and a TTL with the top bit set is not kept', () => {
  const cache = new DnsCache(() => 0);
  const withOpt = {
    ...answer(5),
    additionals: [{ name: '.', type: 'OPT', udpPayloadSize: 1232, flags: 0, options: [] }],
  } as unknown as Packet;
  cache.put('svc.ns.svc.cluster.local', 'A', withOpt);
  assert.deepEqual(cache.get('svc.ns.svc.cluster.local', 'A')?.additionals, []);
  cache.put('big.ns.svc.cluster.local', 'A', answer(2 ** 31));
  assert.equal(cache.get('big.ns.svc.cluster.local', 'A'), undefined);
});
