// Proves that sessions are kept in their store while they live, are taken back by a new
// manager with one lease of grace, resume by token, and expire (undone and forgotten) without it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LEASE_SECONDS, Sessions } from './sessions.ts';
import type { SessionStore, StoredSession } from './session-leases.ts';

function memoryStore(initial: StoredSession[] = []) {
  const saved = new Map(initial.map((s) => [s.id, s]));
  const renewed: string[] = [];
  const store: SessionStore = {
    load: () => Promise.resolve([...saved.values()]),
    save: (s) => (saved.set(s.id, s), Promise.resolve()),
    renew: (id) => (renewed.push(id), Promise.resolve()),
    remove: (id) => (saved.delete(id), Promise.resolve()),
  };
  return { store, saved, renewed };
}

test('a session is stored without its token, and a new manager resumes it by that token', async () => {
  let now = 1_000_000;
  const first = memoryStore();
  const grant = await new Sessions(first.store, undefined, () => now).open('dev@laptop');
  const stored = first.saved.get(grant.id)!;
  assert.equal(stored.holder, 'dev@laptop');
  assert.ok(!JSON.stringify(stored).includes(grant.token), 'the token itself is never stored');

  const restarted = new Sessions(memoryStore([stored]).store, undefined, () => now);
  assert.deepEqual([...(await restarted.takeBack())], [grant.id]);
  now += 600_000; // a slow start: nothing expires before the manager serves
  restarted.sweep();
  restarted.serving();
  now += (LEASE_SECONDS - 1) * 1000; // within one lease of serving
  const resumed = await restarted.open('dev@laptop', grant.token);
  assert.equal(resumed.id, grant.id);
  assert.equal(restarted.touch(grant.token)?.token, grant.token);
  assert.equal(restarted.touch('another-token'), undefined);
  restarted.close();
});

test('a taken-back session whose daemon does not return within a lease of serving expires, and its Lease goes', async () => {
  let now = 0;
  const stored = {
    id: '3f1c9f2e-8c55-4f0e-9d3e-3a4c7b1e2d10',
    holder: 'gone@laptop',
    tokenHash: 'x'.repeat(43),
  };
  const { store, saved } = memoryStore([stored]);
  const sessions = new Sessions(store, undefined, () => now);
  await sessions.takeBack();
  sessions.serving();
  const expired: string[] = [];
  sessions.onExpired = (s) => expired.push(s.id);
  now += LEASE_SECONDS * 1000 - 1;
  sessions.sweep();
  assert.deepEqual(expired, []);
  now += 2;
  sessions.sweep();
  assert.deepEqual(expired, [stored.id]);
  assert.equal(saved.size, 0);
  sessions.close();
});

test('renewals reach the store at most every 10 s; ending a session removes its Lease', async () => {
  let now = 0;
  const { store, saved, renewed } = memoryStore();
  const sessions = new Sessions(store, undefined, () => now);
  const grant = await sessions.open('dev@laptop');
  for (let i = 0; i < 5; i++) {
    now += 3000;
    sessions.touch(grant.token);
  }
  assert.deepEqual(renewed, [grant.id]);
  sessions.end(grant.token);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(saved.size, 0);
  assert.equal(sessions.touch(grant.token), undefined);
  sessions.close();
});
