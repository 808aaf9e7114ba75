// The workstation's half of authorization by claims (src/protocol/claims.ts): before an
// intercept request, the daemon writes the session's claims with the developer's own
// credentials — an annotation on the workload (`patch`), claim objects for `--swap-deployment`
// and `run` (`create` Deployments / Services), and on the Services an intercept may change
// (`patch`) — so the API server's RBAC decides, and a refusal
// is its own message. Once the manager has answered, the claims are taken back.
import {
  AppsV1Api,
  CoreV1Api,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Service,
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

/** What a claim on a workload gives back: how to take it back, and the labels of its pods. */
interface WorkloadClaim {
  release: () => Promise<void>;
  podLabels: Record<string, string>;
}

/**
 * Annotates the workload with the session's claim. When no such workload exists, nothing is
 * written and the manager's answer says what the name is instead.
 */
async function claimWorkload(
  apps: AppsV1Api,
  request: ClaimRequest,
  session: SessionCredential,
): Promise<WorkloadClaim> {
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
      const patched = await patch(
        resource,
        claimProof(session.token, patchSubject(resource, namespace, name)),
      );
      return {
        release: () => patch(resource, null).then(() => undefined, ignoreNotFound),
        podLabels: patched.spec?.template?.metadata?.labels ?? {},
      };
    } catch (err) {
      ignoreNotFound(err);
    }
  }
  return { release: () => Promise.resolve(), podLabels: {} };
}

/**
 * Claims every Service that selects the workload's pods and that the developer may patch: an
 * intercept moves numeric target ports of those Services to the agent, and the manager does
 * that only for Services the session claimed. One the developer may not patch is left out (the
 * manager then names it, if it had to change it).
 */
async function claimServices(
  core: CoreV1Api,
  namespace: string,
  listed: Promise<{ items: V1Service[] }>,
  podLabels: Record<string, string>,
  session: SessionCredential,
): Promise<(() => Promise<void>)[]> {
  const key = CLAIM_ANNOTATION_PREFIX + session.id;
  const services = (await listed).items.filter((s) => {
    const selector = Object.entries(s.spec?.selector ?? {});
    return selector.length > 0 && selector.every(([k, v]) => podLabels[k] === v);
  });
  const claimed = await Promise.allSettled(
    services.map(async (service) => {
      const name = service.metadata!.name!;
      const patch = (value: string | null) =>
        core.patchNamespacedService(
          { name, namespace, body: { metadata: { annotations: { [key]: value } } } },
          mergePatch,
        );
      try {
        await patch(claimProof(session.token, patchSubject('services', namespace, name)));
        return () => patch(null).then(() => undefined, ignoreNotFound);
      } catch (err) {
        if ((err as { code?: number }).code !== 403) ignoreNotFound(err);
        return undefined;
      }
    }),
  );
  // Every claim made is given back, also when another one failed.
  const releases = claimed.flatMap((c) => (c.status === 'fulfilled' && c.value ? [c.value] : []));
  const failed = claimed.find((c) => c.status === 'rejected');
  if (failed) {
    await Promise.all(releases.map((release) => release().catch(() => undefined)));
    throw failed.reason;
  }
  return releases;
}

/** The namespace's Services; none when the developer may not list them (nothing is claimed). */
function listServices(core: CoreV1Api, namespace: string): Promise<{ items: V1Service[] }> {
  return core.listNamespacedService({ namespace }).catch((err: unknown) => {
    if ((err as { code?: number }).code === 403) return { items: [] };
    throw err;
  });
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
    await Promise.all(undo.splice(0).map((step) => step().catch(() => undefined)));
  };
  const server = kc.getCurrentCluster()?.server ?? '';
  try {
    if (request.mode !== 'expose') {
      // The Services are listed while the workload is claimed: its pods' labels pick them.
      const core = kc.makeApiClient(CoreV1Api);
      const listed = request.mode === 'intercept' ? listServices(core, request.namespace) : undefined;
      listed?.catch(() => undefined); // awaited below; not unhandled if the workload claim fails first
      const workload = await claimWorkload(kc.makeApiClient(AppsV1Api), request, session);
      undo.push(workload.release);
      if (listed)
        undo.push(...(await claimServices(core, request.namespace, listed, workload.podLabels, session)));
    }
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
