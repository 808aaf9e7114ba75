// `telepod list`, read with the developer's own credentials: the namespace's Deployments,
// StatefulSets and ReplicaSets (not those a Deployment owns, not telepod's own), the Services
// that select them — with the ports they had before an intercept moved them — and who
// intercepts them (the annotation the manager keeps on each intercepted workload). Listing
// needs `list` on those resources in that namespace and nothing of the manager.
import {
  AppsV1Api,
  CoreV1Api,
  type KubeConfig,
  type V1ObjectMeta,
  type V1Service,
} from '@kubernetes/client-node';
import {
  INTERCEPTS_ANNOTATION,
  MANAGED_BY,
  UNDO_ANNOTATION,
  type InterceptHolder,
  type WorkloadInfo,
} from '../protocol/intercept.ts';
import { explainKubeError } from './errors.ts';

interface Listed {
  kind: string;
  metadata?: V1ObjectMeta;
  labels: Record<string, string>;
}

interface RecordedPorts {
  services?: { path: string; ports: { name?: string; port: number; targetPort?: number | string }[] }[];
}

function parsed<T>(text: string | undefined, fallback: T): T {
  try {
    return text ? (JSON.parse(text) as T) : fallback;
  } catch {
    return fallback;
  }
}

function selects(service: V1Service, labels: Record<string, string>): boolean {
  const selector = Object.entries(service.spec?.selector ?? {});
  return selector.length > 0 && selector.every(([k, v]) => labels[k] === v);
}

function describe(workload: Listed, services: V1Service[], namespace: string): WorkloadInfo {
  const annotations = workload.metadata?.annotations ?? {};
  const before = parsed<RecordedPorts>(annotations[UNDO_ANNOTATION], {}).services ?? [];
  const intercepts = parsed<InterceptHolder[]>(annotations[INTERCEPTS_ANNOTATION], []);
  return {
    kind: workload.kind,
    name: workload.metadata?.name ?? '',
    namespace,
    services: services
      .filter((s) => selects(s, workload.labels))
      .map((s) => {
        const recorded = before.find((b) => b.path.endsWith(`/services/${s.metadata?.name}`));
        const ports = recorded?.ports ?? s.spec?.ports ?? [];
        return {
          name: s.metadata?.name ?? '',
          ports: ports.map((p) => ({
            ...(p.name ? { name: p.name } : {}),
            port: p.port,
            targetPort: String(p.targetPort ?? p.port),
          })),
        };
      }),
    intercepts,
    ...(annotations[UNDO_ANNOTATION] && !intercepts.length ? { dormantAgent: true } : {}),
  };
}

/** The namespace's workloads, their Services and who intercepts them. */
export async function listWorkloads(kc: KubeConfig, namespace: string): Promise<WorkloadInfo[]> {
  const apps = kc.makeApiClient(AppsV1Api);
  const core = kc.makeApiClient(CoreV1Api);
  try {
    const [deployments, statefulSets, replicaSets, services] = await Promise.all([
      apps.listNamespacedDeployment({ namespace }),
      apps.listNamespacedStatefulSet({ namespace }),
      apps.listNamespacedReplicaSet({ namespace }),
      core.listNamespacedService({ namespace }),
    ]);
    const all: Listed[] = [
      ...deployments.items.map((o) => ({
        kind: 'Deployment',
        metadata: o.metadata,
        labels: o.spec?.template.metadata?.labels ?? {},
      })),
      ...statefulSets.items.map((o) => ({
        kind: 'StatefulSet',
        metadata: o.metadata,
        labels: o.spec?.template.metadata?.labels ?? {},
      })),
      ...replicaSets.items.map((o) => ({
        kind: 'ReplicaSet',
        metadata: o.metadata,
        labels: o.spec?.template?.metadata?.labels ?? {},
      })),
    ];
    return all
      .filter((w) => !w.metadata?.ownerReferences?.some((o) => o.kind === 'Deployment'))
      .filter(
        (w) =>
          w.metadata?.labels?.['app.kubernetes.io/managed-by'] !== MANAGED_BY['app.kubernetes.io/managed-by'],
      )
      .map((w) => describe(w, services.items, namespace));
  } catch (err) {
    throw explainKubeError(err, kc.getCurrentCluster()?.server ?? '');
  }
}
