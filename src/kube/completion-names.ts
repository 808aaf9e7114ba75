// Names that shell completion offers, read as the user with their kubeconfig: its contexts (no
// cluster call), the cluster's namespaces, and a namespace's Deployments and StatefulSets (not
// telepod's own, as in `telepod list`).
import { AppsV1Api, CoreV1Api, type V1ObjectMeta } from '@kubernetes/client-node';
import { MANAGED_BY } from '../protocol/intercept.ts';
import { kubeconfigFiles, loadKubeConfig, mergedKubeconfig, type KubeSelection } from './config.ts';

/** The kinds of workload whose names completion offers. */
export type WorkloadKind = 'Deployment' | 'StatefulSet';

const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';

function names(items: { metadata?: V1ObjectMeta }[]): string[] {
  return items.flatMap((item) => (item.metadata?.name ? [item.metadata.name] : []));
}

/** The context names of the selection's kubeconfig files. */
export function contextNames(selection: KubeSelection): string[] {
  return mergedKubeconfig(kubeconfigFiles(selection)).contexts.map((context) => context.name);
}

/** The cluster's namespaces (needs `list` on namespaces). */
export async function namespaceNames(selection: KubeSelection): Promise<string[]> {
  const { kc } = loadKubeConfig(selection);
  return names((await kc.makeApiClient(CoreV1Api).listNamespace()).items);
}

/** The names of the selected namespace's workloads of these kinds. */
export async function workloadNames(
  selection: KubeSelection,
  kinds: readonly WorkloadKind[],
): Promise<string[]> {
  const { kc, namespace } = loadKubeConfig(selection);
  const apps = kc.makeApiClient(AppsV1Api);
  const lists = await Promise.all(
    kinds.map((kind) =>
      kind === 'Deployment'
        ? apps.listNamespacedDeployment({ namespace })
        : apps.listNamespacedStatefulSet({ namespace }),
    ),
  );
  return names(
    lists
      .flatMap((list) => list.items)
      .filter((item) => item.metadata?.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY[MANAGED_BY_LABEL]),
  );
}
