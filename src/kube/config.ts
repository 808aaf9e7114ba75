// Loads the kubeconfig the way kubectl does: --kubeconfig, else $KUBECONFIG (a list of files),
// else ~/.kube/config; then --context and the namespace (flag, else the context's, else default).
import { KubeConfig } from '@kubernetes/client-node';
import { usageError } from '../protocol/errors.ts';

export interface KubeSelection {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
}

export interface LoadedKubeConfig {
  kc: KubeConfig;
  context: string;
  namespace: string;
}

export function loadKubeConfig(selection: KubeSelection): LoadedKubeConfig {
  const kc = new KubeConfig();
  try {
    if (selection.kubeconfig) kc.loadFromFile(selection.kubeconfig);
    else kc.loadFromDefault();
  } catch (err) {
    throw usageError(
      `cannot read the kubeconfig ${selection.kubeconfig ?? ''}: ${(err as Error).message}`.trim(),
    );
  }
  if (selection.context) {
    if (!kc.getContextObject(selection.context)) {
      throw usageError(`context "${selection.context}" is not in the kubeconfig`);
    }
    kc.setCurrentContext(selection.context);
  }
  const context = kc.getCurrentContext();
  if (!context || !kc.getCurrentCluster())
    throw usageError('the kubeconfig names no current context or cluster');
  const namespace = selection.namespace ?? kc.getContextObject(context)?.namespace ?? 'default';
  return { kc, context, namespace };
}
