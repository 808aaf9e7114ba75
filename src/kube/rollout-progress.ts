// Watches a workload roll out while the traffic manager changes it for an intercept, and
// describes each change as a progress step ("rolling out deployment/echo: 1 of 2 pods updated,
// 1 ready"). It reads the workload with the developer's own credentials four times a second (a
// rollout on a fast cluster can be done within one second); being
// progress only, a failed read is skipped and the intercept's outcome decides everything.
import { AppsV1Api, type KubeConfig, type V1ObjectMeta } from '@kubernetes/client-node';
import type { ProgressStep } from '../protocol/daemon-api.ts';

/** What the rollout description needs of a Deployment, StatefulSet or ReplicaSet. */
export interface WorkloadRolloutState {
  kind: string;
  metadata?: V1ObjectMeta;
  spec?: { replicas?: number };
  status?: {
    replicas?: number;
    updatedReplicas?: number;
    readyReplicas?: number;
    observedGeneration?: number;
  };
}

/** Describes a workload's rollout; undefined while nothing has changed since `startGeneration`. */
export function describeRollout(w: WorkloadRolloutState, startGeneration: number): string | undefined {
  const generation = w.metadata?.generation ?? 0;
  if (generation <= startGeneration) return undefined;
  const name = `${w.kind.toLowerCase()}/${w.metadata?.name ?? ''}`;
  const wanted = w.spec?.replicas ?? 1;
  const status = w.status ?? {};
  if (wanted === 0) {
    const left = status.replicas ?? 0;
    return `scaling ${name} to 0 (${left} pod${left === 1 ? '' : 's'} left)`;
  }
  const updated = status.updatedReplicas ?? 0;
  const ready = status.readyReplicas ?? 0;
  const settled = (status.observedGeneration ?? 0) >= generation && updated >= wanted && ready >= wanted;
  if (settled && (status.replicas ?? 0) <= wanted) return `waiting for the telepod agent of ${name}`;
  const old = (status.replicas ?? 0) - updated;
  const rest = old > 0 ? `${old} old pod${old === 1 ? '' : 's'} still running` : `${ready} ready`;
  return `rolling out ${name}: ${updated} of ${wanted} pods updated, ${rest}`;
}

type WorkloadRead = () => Promise<WorkloadRolloutState>;

/** The ways to read `namespace/name`, one per workload kind an intercept can name. */
function workloadReads(apps: AppsV1Api, namespace: string, name: string): WorkloadRead[] {
  return [
    () => apps.readNamespacedDeployment({ name, namespace }).then((w) => ({ ...w, kind: 'Deployment' })),
    () => apps.readNamespacedStatefulSet({ name, namespace }).then((w) => ({ ...w, kind: 'StatefulSet' })),
    () => apps.readNamespacedReplicaSet({ name, namespace }).then((w) => ({ ...w, kind: 'ReplicaSet' })),
  ];
}

/** How long an intercept waits for the workload's first read. */
const FIRST_READ_MS = 2000;

/** A rollout being followed; `stop` ends it (no step is reported after it). */
export interface RolloutFollower {
  stop(): void;
}

/**
 * Reports each new description of `namespace/name`'s rollout through `step` until stopped; it
 * answers once the workload was read the first time (call it before the change begins).
 */
export async function followRollout(
  kc: KubeConfig,
  namespace: string,
  name: string,
  step: ProgressStep,
  intervalMs = 250,
): Promise<RolloutFollower> {
  const apps = kc.makeApiClient(AppsV1Api);
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let startGeneration: number | undefined;
  let last: string | undefined;
  // The kind is found once; later reads ask for that kind alone.
  let reads = workloadReads(apps, namespace, name);
  const read = async () => {
    for (const attempt of reads) {
      const found = await attempt().catch(() => undefined);
      if (found) {
        reads = [attempt];
        return found;
      }
    }
    return undefined;
  };
  const poll = async () => {
    const workload = await read();
    if (stopped || !workload) return;
    startGeneration ??= workload.metadata?.generation ?? 0;
    const text = describeRollout(workload, startGeneration);
    if (text && text !== last) step((last = text));
  };
  const next = () => {
    timer = setTimeout(
      () =>
        void poll().finally(() => {
          if (!stopped) next();
        }),
      intervalMs,
    );
  };
  // The first read sets where the rollout starts; an API server slow to answer delays the
  // intercept by 2 s at most (the progress then starts with the next read).
  await Promise.race([poll(), new Promise((resolve) => setTimeout(resolve, FIRST_READ_MS).unref())]);
  next();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
