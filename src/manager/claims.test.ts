// Proves that the manager acts only on what the session claimed with the developer's own
// credentials: the workload's annotation for patch, claim objects for create, each with a
// proof only that session can compute.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  CLAIM_ANNOTATION_PREFIX,
  CLAIM_IMAGE,
  CLAIM_LABEL,
  claimProof,
  createSubject,
  patchSubject,
} from '../protocol/claims.ts';
import { MANAGED_BY } from '../protocol/intercept.ts';
import type { InterceptRequest } from '../protocol/requests.ts';
import { Forbidden, requireClaims, requireServiceClaims, sweepClaimObjects } from './claims.ts';
import type { KubeApi, KubeObject } from './kube-api.ts';
import type { FoundWorkload } from './workloads.ts';

const session = { id: 'a1b2c3d4-0000-4000-8000-000000000001', token: 'secret-token' };
const other = { id: 'a1b2c3d4-0000-4000-8000-000000000002', token: 'other-token' };
const request: InterceptRequest = {
  mode: 'intercept',
  namespace: 'a',
  workload: 'web',
  ports: [{ local: 8080 }],
};

function workload(annotations: Record<string, string>): FoundWorkload {
  return {
    resource: 'deployments',
    object: {
      kind: 'Deployment',
      metadata: { name: 'web', annotations },
      spec: { selector: {}, template: { spec: { containers: [] } } },
    },
  };
}

function claimOn(owner: { id: string; token: string }, subject: string): Record<string, string> {
  return { [CLAIM_ANNOTATION_PREFIX + owner.id]: claimProof(owner.token, subject) };
}

const listing = (objects: KubeObject[]) => ({ list: () => Promise.resolve(objects) }) as unknown as KubeApi;

test('an intercept needs the session’s own claim on that very workload', async () => {
  const api = listing([]);
  const patchWeb = patchSubject('deployments', 'a', 'web');
  await requireClaims(api, session, request, workload(claimOn(session, patchWeb)));
  for (const annotations of [
    {},
    claimOn(other, patchWeb), // another session's claim
    { [CLAIM_ANNOTATION_PREFIX + session.id]: claimProof(other.token, patchWeb) }, // copied key, wrong proof
    claimOn(session, patchSubject('deployments', 'a', 'api')), // a claim on another workload
    claimOn(session, patchSubject('statefulsets', 'a', 'web')),
  ]) {
    await assert.rejects(requireClaims(api, session, request, workload(annotations)), Forbidden);
  }
});

test('swap also needs a claim Deployment; expose with ports a claim Service too', async () => {
  const patchWeb = claimOn(session, patchSubject('deployments', 'a', 'web'));
  const claimed = (resource: 'deployments' | 'services', spec: object) => ({
    metadata: {
      name: 'telepod-claim-x7k2q',
      labels: { 'app.kubernetes.io/managed-by': 'telepod' },
      annotations: claimOn(session, createSubject(resource, 'a')),
    },
    spec,
  });
  const claimDeployment = claimed('deployments', {
    replicas: 0,
    template: { spec: { containers: [{ image: 'telepod.invalid/claim' }] } },
  });
  const claimService = claimed('services', { clusterIP: 'None' });
  const swap = { ...request, mode: 'swap' as const };
  await assert.rejects(requireClaims(listing([]), session, swap, workload(patchWeb)), /create deployments a/);
  await requireClaims(listing([claimDeployment]), session, swap, workload(patchWeb));
  const expose = { ...request, mode: 'expose' as const, workload: '' };
  const both: KubeApi = {
    list: (path: string) => Promise.resolve(path.includes('/services') ? [claimService] : [claimDeployment]),
  } as unknown as KubeApi;
  await requireClaims(both, session, expose);
  await assert.rejects(requireClaims(listing([claimDeployment]), session, expose), /create services a/);
  await requireClaims(listing([claimDeployment]), session, { ...expose, ports: [] });
});

test('a patched Deployment of the developer is not a claim object, whatever labels and proof it carries', async () => {
  const patched = (name: string, spec: object) => ({
    metadata: {
      name,
      labels: { 'app.kubernetes.io/managed-by': 'telepod' },
      annotations: claimOn(session, createSubject('deployments', 'a')),
    },
    spec,
  });
  const claimSpec = { replicas: 0, template: { spec: { containers: [{ image: 'telepod.invalid/claim' }] } } };
  const swap = { ...request, mode: 'swap' as const };
  const patchWeb = workload(claimOn(session, patchSubject('deployments', 'a', 'web')));
  for (const object of [
    patched('my-app', claimSpec), // not created as a claim
    patched('telepod-claim-x', { ...claimSpec, replicas: 1 }),
    patched('telepod-claim-x', { replicas: 0, template: { spec: { containers: [{ image: 'evil' }] } } }),
  ]) {
    await assert.rejects(requireClaims(listing([object]), session, swap, patchWeb), Forbidden);
  }
});

test('an intercept changes only Services the session claimed', () => {
  const service = (name: string, annotations: Record<string, string>) => ({
    metadata: { name, annotations },
  });
  const mine = service('web', claimOn(session, patchSubject('services', 'a', 'web')));
  const payments = service('payments', {});
  requireServiceClaims(session, 'a', [mine, payments], ['web']);
  assert.throws(
    () => requireServiceClaims(session, 'a', [mine, payments], ['web', 'payments']),
    /patch services a\/payments/,
  );
  assert.throws(() => requireServiceClaims(other, 'a', [mine], ['web']), Forbidden);
});

test("a session's end sweeps that session's claim objects only; a manager's start, all of them", async () => {
  const asked: string[] = [];
  const removed: string[] = [];
  const claim = {
    metadata: { name: 'telepod-claim-x1', namespace: 'a', labels: { ...MANAGED_BY } },
    spec: { replicas: 0, template: { spec: { containers: [{ image: CLAIM_IMAGE }] } } },
  };
  const api = {
    list: (path: string) => {
      asked.push(decodeURIComponent(path));
      return Promise.resolve(path.includes('/deployments') ? [claim] : []);
    },
    remove: (path: string) => {
      removed.push(path);
      return Promise.resolve();
    },
  } as unknown as KubeApi;
  assert.equal(await sweepClaimObjects(api, ['a'], session.id), 1);
  assert.ok(
    asked.every((path) => path.endsWith(`?labelSelector=${CLAIM_LABEL}=${session.id}`)),
    asked.join('\n'),
  );
  assert.deepEqual(removed, ['/apis/apps/v1/namespaces/a/deployments/telepod-claim-x1']);
  asked.length = 0;
  await sweepClaimObjects(api, undefined);
  assert.ok(
    asked.every((path) => path.endsWith(`?labelSelector=${CLAIM_LABEL}`)),
    asked.join('\n'),
  );
});
