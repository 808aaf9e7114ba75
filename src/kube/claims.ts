// The workstation's half of authorization by claims (src/protocol/claims.ts): before an
// intercept request, the daemon writes the session's claims with the developer's own
// credentials — an annotation on the workload (`patch`), claim objects for `--swap-deployment`
// and `run` (`create` Deployments / Services) — so the API server's RBAC decides, and a refusal
// is its own message. Once the manager has answered, the claims are taken back.
import {
  AppsV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
} from '@kubernetes/client-node';
import {
  CLAIM_ANNOTATION_PREFIX,
  CLAIM_IMAGE,
  CLAIM_LABEL,
  CLAIM_NAME_PREFIX,
  claimProof,
  createSubject,
  patchSubject,
} from '../protocol/claims.ts';
import { MANAGED_BY, type InterceptMode } from '../protocol/intercept.ts';
import { explainKubeError } from './errors.ts';

export interface ClaimRequest {
  mode: InterceptMode;
  namespace: string;
  workload: string;
  ports: unknown[];
}

export interface SessionCredential {
  id: string;
  token: string;
}

/** What was written; `release` takes it back (safe to call once the manager removed some). */
export interface Claims {
  release(): Promise<void>;
}

const WORKLOAD_RESOURCES = ['deployments', 'statefulsets', 'replicasets'] as const;
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

function ignoreNotFound(err: unknown): void {
  if ((err as { code?: number }).code !== 404) throw err;
}

/**
 * Annotates the workload with the session's claim; answers how to take it back. When no such
 * workload exists, nothing is written and the manager's answer says what the name is instead.
 */
async function claimWorkload(
  apps: AppsV1Api,
  request: ClaimRequest,
  session: SessionCredential,
): Promise<() => Promise<void>> {
  const { namespace, workload: name } = request;
  const key = CLAIM_ANNOTATION_PREFIX + session.id;
  const patch = (resource: (typeof WORKLOAD_RESOURCES)[number], value: string | null) => {
    const body = { metadata: { annotations: { [key]: value } } };
    if (resource === 'deployments')
      return apps.patchNamespacedDeployment({ name, namespace, body }, mergePatch);
    if (resource === 'statefulsets')
      return apps.patchNamespacedStatefulSet({ name, namespace, body }, mergePatch);
    return apps.patchNamespacedReplicaSet({ name, namespace, body }, mergePatch);
  };
  for (const resource of WORKLOAD_RESOURCES) {
    try {
      await patch(resource, claimProof(session.token, patchSubject(resource, namespace, name)));
      return () => patch(resource, null).then(() => undefined, ignoreNotFound);
    } catch (err) {
      ignoreNotFound(err);
    }
  }
  return () => Promise.resolve();
}

/** A claim object: a Deployment of no replicas, or a headless Service of no selector. */
async function claimObject(
  kc: KubeConfig,
  resource: 'deployments' | 'services',
  namespace: string,
  session: SessionCredential,
): Promise<() => Promise<void>> {
  const labels = { ...MANAGED_BY, [CLAIM_LABEL]: session.id };
  const metadata = {
    generateName: CLAIM_NAME_PREFIX,
    namespace,
    labels,
    annotations: {
      [CLAIM_ANNOTATION_PREFIX + session.id]: claimProof(session.token, createSubject(resource, namespace)),
    },
  };
  if (resource === 'services') {
    const core = kc.makeApiClient(CoreV1Api);
    const body = { metadata, spec: { clusterIP: 'None', ports: [{ port: 1 }] } };
    const created = await core.createNamespacedService({ namespace, body });
    const name = created.metadata!.name!;
    return () => core.deleteNamespacedService({ name, namespace }).then(() => undefined, ignoreNotFound);
  }
  const apps = kc.makeApiClient(AppsV1Api);
  const selector = { [CLAIM_LABEL]: session.id };
  const body = {
    metadata,
    spec: {
      replicas: 0,
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: selector },
        spec: { containers: [{ name: 'claim', image: CLAIM_IMAGE }] },
      },
    },
  };
  const created = await apps.createNamespacedDeployment({ namespace, body });
  const name = created.metadata!.name!;
  return () => apps.deleteNamespacedDeployment({ name, namespace }).then(() => undefined, ignoreNotFound);
}

/** Writes every claim `request` needs; a refusal by the API server is thrown as its own message. */
export async function writeClaims(
  kc: KubeConfig,
  request: ClaimRequest,
  session: SessionCredential,
): Promise<Claims> {
  const undo: (() => Promise<void>)[] = [];
  const release = async () => {
    for (const step of undo.splice(0)) await step().catch(() => undefined);
  };
  const server = kc.getCurrentCluster()?.server ?? '';
  try {
    if (request.mode !== 'expose')
      undo.push(await claimWorkload(kc.makeApiClient(AppsV1Api), request, session));
    if (request.mode === 'swap' || request.mode === 'expose') {
      undo.push(await claimObject(kc, 'deployments', request.namespace, session));
    }
    if (request.mode === 'expose' && request.ports.length) {
      undo.push(await claimObject(kc, 'services', request.namespace, session));
    }
  } catch (err) {
    await release();
    throw explainKubeError(err, server);
  }
  return { release };
}
