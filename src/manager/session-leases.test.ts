// Proves that session Leases hold no token, and that a Lease this install did not sign (or
// one changed since, e.g. to give a session's id to another token) is ignored.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { KubeApi, KubeObject } from './kube-api.ts';
import { LeaseSessionStore, tokenHash } from './session-leases.ts';
import { Signer } from './signer.ts';

function fakeApi() {
  const objects: KubeObject[] = [];
  const api = {
    create: (_: string, body: KubeObject) => (objects.push(structuredClone(body)), Promise.resolve(body)),
    list: () => Promise.resolve(structuredClone(objects)),
  } as unknown as KubeApi;
  return { api, objects };
}

const session = {
  id: '5b9d2c1a-3e4f-4a5b-8c6d-7e8f9a0b1c2d',
  holder: 'dev@laptop',
  tokenHash: tokenHash('t0ken'),
};

test('a saved session loads back; the Lease names its holder and never the token', async () => {
  const { api, objects } = fakeApi();
  const store = new LeaseSessionStore(api, 'telepod', new Signer(randomBytes(32)), () => undefined);
  await store.save(session, 20);
  assert.deepEqual(await store.load(), [session]);
  const lease = objects[0] as KubeObject & { spec: { holderIdentity: string; leaseDurationSeconds: number } };
  assert.equal(lease.metadata?.name, `telepod-session-${session.id}`);
  assert.equal(lease.spec.holderIdentity, 'dev@laptop');
  assert.equal(lease.spec.leaseDurationSeconds, 20);
  assert.ok(!JSON.stringify(lease).includes('t0ken'));
});

test('Leases another install signed, or changed since, are ignored and logged', async () => {
  const { api, objects } = fakeApi();
  await new LeaseSessionStore(api, 'telepod', new Signer(randomBytes(32)), () => undefined).save(session, 20);
  const logged: string[] = [];
  const mine = new LeaseSessionStore(api, 'telepod', new Signer(randomBytes(32)), (m) => logged.push(m));
  assert.deepEqual(await mine.load(), []);
  assert.match(logged[0]!, /not signed by this install/);

  const { api: api2, objects: objects2 } = fakeApi();
  const signer = new Signer(randomBytes(32));
  const store = new LeaseSessionStore(api2, 'telepod', signer, () => undefined);
  await store.save(session, 20);
  objects2[0]!.metadata!.annotations!['telepod.io/token-sha256'] = tokenHash('mallory');
  assert.deepEqual(await store.load(), []);
  assert.equal(objects.length, 1);
});
