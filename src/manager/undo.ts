// Changes to the cluster that can be undone: a workload's template/replicas and Service ports
// are changed together with an annotation recording the originals, so that whoever restores
// (the manager on leave, on lease expiry, or a restarted manager) needs nothing but the cluster.
import { UNDO_ANNOTATION } from '../protocol/intercept.ts';
import { isNotFound, KubeApiError, type KubeApi, type KubeObject } from './kube-api.ts';
import type { PodTemplate, Service, ServicePort, Workload } from './workloads.ts';

export interface UndoRecord {
  /** The workload's own API path. */
  workload: string;
  template?: PodTemplate;
  replicas?: number;
  services: { path: string; ports: ServicePort[] }[];
  /** Objects created for the change, deleted on restore. */
  deletes: string[];
  /** ReplicaSets do not roll their pods on a template change: these pods are deleted instead. */
  podsToRoll?: { namespace: string; selector: string };
}

/** Read-modify-write with the API server's optimistic concurrency, retried on conflicts. */
async function update<T extends KubeObject>(
  api: KubeApi,
  path: string,
  change: (object: T) => void,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const object = await api.get<T>(path);
    change(object);
    try {
      await api.replace(path, object);
      return;
    } catch (err) {
      if (!(err instanceof KubeApiError && err.status === 409) || attempt >= 5) throw err;
    }
  }
}

async function rollPods(api: KubeApi, target: UndoRecord['podsToRoll']): Promise<void> {
  if (!target) return;
  const path = `/api/v1/namespaces/${target.namespace}/pods`;
  const pods = await api.list(`${path}?labelSelector=${encodeURIComponent(target.selector)}`);
  await Promise.all(pods.map((p) => api.remove(`${path}/${p.metadata!.name!}`).catch(() => undefined)));
}

/** Applies a change and records how to undo it on the workload itself. */
export async function applyChange(
  api: KubeApi,
  undo: UndoRecord,
  change: { template?: PodTemplate; replicas?: number; services: { path: string; ports: ServicePort[] }[] },
): Promise<void> {
  await update<Workload>(api, undo.workload, (workload) => {
    workload.metadata!.annotations = {
      ...workload.metadata!.annotations,
      [UNDO_ANNOTATION]: JSON.stringify(undo),
    };
    if (change.template) workload.spec.template = change.template;
    if (change.replicas !== undefined) workload.spec.replicas = change.replicas;
  });
  for (const service of change.services) {
    await update<Service>(api, service.path, (s) => (s.spec.ports = service.ports));
  }
  await rollPods(api, undo.podsToRoll);
}

/** Puts everything recorded back; safe to repeat, and a vanished object is not an error. */
export async function restore(api: KubeApi, undo: UndoRecord): Promise<void> {
  try {
    await update<Workload>(api, undo.workload, (workload) => {
      const annotations = { ...workload.metadata!.annotations };
      delete annotations[UNDO_ANNOTATION];
      workload.metadata!.annotations = annotations;
      if (undo.template) workload.spec.template = undo.template;
      if (undo.replicas !== undefined) workload.spec.replicas = undo.replicas;
    });
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  for (const service of undo.services) {
    await update<Service>(api, service.path, (s) => (s.spec.ports = service.ports)).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }
  for (const path of undo.deletes) {
    await api.remove(path).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  }
  await rollPods(api, undo.podsToRoll);
}

/** The undo record a workload carries, if telepod changed it. */
export function recordedUndo(workload: KubeObject): UndoRecord | undefined {
  const text = workload.metadata?.annotations?.[UNDO_ANNOTATION];
  return text ? (JSON.parse(text) as UndoRecord) : undefined;
}
