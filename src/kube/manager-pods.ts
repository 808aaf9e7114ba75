// Finds the traffic manager's pods: which are ready, which run a given bundle, and waits for
// one to serve (failing early, with the cluster's reason, when its pod cannot start).
import { CoreV1Api, type KubeConfig, type V1Pod } from '@kubernetes/client-node';
import { TelepodError } from '../protocol/errors.ts';
import { FAILING_WAIT_REASONS } from '../protocol/pod-failures.ts';

const NAME = 'telepod-manager';

/** Whether a manager pod runs the bundle `configMapName` (any version when undefined). */
export function runs(pod: V1Pod, configMapName: string | undefined): boolean {
  return !configMapName || !!pod.spec?.volumes?.some((v) => v.configMap?.name === configMapName);
}

export function ready(pod: V1Pod): boolean {
  return (
    !pod.metadata?.deletionTimestamp &&
    !!pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')
  );
}

export async function managerPods(kc: KubeConfig, namespace: string): Promise<V1Pod[]> {
  const core = kc.makeApiClient(CoreV1Api);
  return (await core.listNamespacedPod({ namespace, labelSelector: `app.kubernetes.io/name=${NAME}` })).items;
}

/** The name of a ready manager pod running `configMapName` (any, when undefined), waiting up to `timeoutMs`. */
export async function waitForManagerPod(
  kc: KubeConfig,
  namespace: string,
  configMapName: string | undefined,
  timeoutMs: number,
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const pods = (await managerPods(kc, namespace)).filter((p) => runs(p, configMapName));
    const found = pods.find(ready);
    if (found?.metadata?.name) return found.metadata.name;
    for (const pod of pods.filter((p) => !p.metadata?.deletionTimestamp)) {
      const stuck = pod.status?.containerStatuses?.find((c) =>
        FAILING_WAIT_REASONS.has(c.state?.waiting?.reason ?? ''),
      );
      const waiting = stuck?.state?.waiting;
      if (waiting) {
        throw new TelepodError(
          `the traffic manager in namespace ${namespace} cannot start: pod ${pod.metadata?.name}: ` +
            `${waiting.reason}: ${waiting.message ?? ''}`.trim(),
        );
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new TelepodError(
    `the traffic manager in namespace ${namespace} did not become ready in ${timeoutMs / 1000} s`,
  );
}
