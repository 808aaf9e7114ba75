// The manager's half of authorization by claims (src/protocol/claims.ts): an intercept request
// goes ahead only when the cluster holds the session's claims, written with the developer's own
// credentials — the workload annotated (they may patch it), claim objects created (they may
// create Deployments / Services in the namespace). Also sweeps claim objects a crashed daemon
// left behind.
import { timingSafeEqual } from 'node:crypto';
import {
  CLAIM_ANNOTATION_PREFIX,
  CLAIM_IMAGE,
  CLAIM_LABEL,
  CLAIM_NAME_PREFIX,
  claimProof,
  createSubject,
  patchSubject,
} from '../protocol/claims.ts';
import { TelepodError } from '../protocol/errors.ts';
import { MANAGED_BY } from '../protocol/intercept.ts';
import type { InterceptRequest } from '../protocol/requests.ts';
import type { KubeApi, KubeObject } from './kube-api.ts';
import { servicePath, workloadPath, type FoundWorkload } from './workloads.ts';

/** Refused because the developer's own rights do not cover it (HTTP 403). */
export class Forbidden extends TelepodError {
  readonly status = 403;
}

export interface ClaimingSession {
  id: string;
  token: string;
}

function proves(object: KubeObject, session: ClaimingSession, subject: string): boolean {
  const value = Buffer.from(object.metadata?.annotations?.[CLAIM_ANNOTATION_PREFIX + session.id] ?? '');
  const expected = Buffer.from(claimProof(session.token, subject));
  return value.length === expected.length && timingSafeEqual(value, expected);
}

type ClaimObject = KubeObject & {
  spec?: {
    replicas?: number;
    selector?: unknown;
    clusterIP?: string;
    template?: { spec?: { containers?: { image?: string }[] } };
  };
};

/**
 * Whether `object` is a claim object as only a `create` makes it: named by the claim prefix
 * (names cannot be patched), labelled by telepod, and of the claim shape — a Deployment of no
 * replicas running the claim image, or a headless Service without a selector. A patched
 * Deployment or Service of the developer's is none of these.
 */
function isClaimObject(object: ClaimObject, resource: 'deployments' | 'services'): boolean {
  const { name, labels } = object.metadata ?? {};
  if (!name?.startsWith(CLAIM_NAME_PREFIX)) return false;
  if (labels?.['app.kubernetes.io/managed-by'] !== MANAGED_BY['app.kubernetes.io/managed-by']) return false;
  const spec = object.spec ?? {};
  if (resource === 'services') return spec.clusterIP === 'None' && !spec.selector;
  const containers = spec.template?.spec?.containers ?? [];
  return spec.replicas === 0 && containers.length === 1 && containers[0]!.image === CLAIM_IMAGE;
}

function refuse(subject: string): never {
  const [verb, resource, where] = subject.split(' ');
  throw new Forbidden(
    `this session holds no claim to ${verb} ${resource} ${where}: telepod only does what your own ` +
      'Kubernetes rights allow, and its daemon writes that claim with your kubeconfig',
  );
}

async function requireClaimObject(
  api: KubeApi,
  resource: 'deployments' | 'services',
  namespace: string,
  session: ClaimingSession,
): Promise<void> {
  const path = resource === 'deployments' ? workloadPath(namespace, resource) : servicePath(namespace);
  const selector = encodeURIComponent(`${CLAIM_LABEL}=${session.id}`);
  const subject = createSubject(resource, namespace);
  const objects = await api.list<ClaimObject>(`${path}?labelSelector=${selector}`);
  if (!objects.some((o) => isClaimObject(o, resource) && proves(o, session, subject))) refuse(subject);
}

/**
 * Throws Forbidden unless the session claimed what `request` needs: `patch` on the workload
 * (intercept, replace, swap), `create` Deployments (swap, expose) and Services (expose with ports).
 */
export async function requireClaims(
  api: KubeApi,
  session: ClaimingSession,
  request: InterceptRequest,
  found?: FoundWorkload,
): Promise<void> {
  const { namespace } = request;
  if (found) {
    const subject = patchSubject(found.resource, namespace, request.workload);
    if (!proves(found.object, session, subject)) refuse(subject);
  }
  if (request.mode === 'swap' || request.mode === 'expose') {
    await requireClaimObject(api, 'deployments', namespace, session);
  }
  if (request.mode === 'expose' && request.ports.length) {
    await requireClaimObject(api, 'services', namespace, session);
  }
}

/**
 * Throws Forbidden unless the session claimed each Service of `changed` (names) among
 * `services`: an intercept moves numeric target ports of the Services that select the workload,
 * and those are the developer's to change only with `patch` on each.
 */
export function requireServiceClaims(
  session: ClaimingSession,
  namespace: string,
  services: KubeObject[],
  changed: string[],
): void {
  for (const name of changed) {
    const service = services.find((s) => s.metadata?.name === name);
    const subject = patchSubject('services', namespace, name);
    if (!service || !proves(service, session, subject)) refuse(subject);
  }
}

/**
 * Deletes claim objects in `namespaces` (all when undefined) whose daemon did not remove them
 * (it was killed between writing and taking back its claims): when a manager starts, all of
 * them; when a session ends, that session's. Only what is a claim object by name, label and
 * shape, whatever else carries the claim label.
 */
export async function sweepClaimObjects(
  api: KubeApi,
  namespaces: string[] | undefined,
  sessionId?: string,
): Promise<number> {
  const selector = `?labelSelector=${encodeURIComponent(sessionId !== undefined ? `${CLAIM_LABEL}=${sessionId}` : CLAIM_LABEL)}`;
  const scopes = namespaces ?? [undefined];
  let removed = 0;
  for (const namespace of scopes) {
    for (const base of [
      namespace ? workloadPath(namespace, 'deployments') : '/apis/apps/v1/deployments',
      namespace ? servicePath(namespace) : '/api/v1/services',
    ]) {
      const resource = base.endsWith('/services') ? 'services' : 'deployments';
      for (const object of await api.list<ClaimObject>(`${base}${selector}`)) {
        if (!isClaimObject(object, resource)) continue;
        const { namespace: ns, name } = object.metadata ?? {};
        const path =
          resource === 'services' ? servicePath(ns!, name) : workloadPath(ns!, 'deployments', name);
        await api.remove(path).catch(() => undefined);
        removed++;
      }
    }
  }
  return removed;
}
