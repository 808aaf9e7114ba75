// What earlier managers left in the cluster: every workload carrying an undo record this
// install signed, with the injection state beside it when there is one. A starting manager
// takes back the intercepts of live sessions and restores the rest.
import type { Signer } from './signer.ts';
import { recordedState, type InjectionState } from './injection-state.ts';
import type { KubeApi } from './kube-api.ts';
import type { UndoBook, UndoRecord } from './undo.ts';
import { SUPPORTED_KINDS, workloadPath, type Workload } from './workloads.ts';

/** A workload an earlier manager changed. */
export interface Leftover {
  /** e.g. `Deployment ns/name`, for the log. */
  label: string;
  namespace: string;
  undo: UndoRecord;
  state?: InjectionState;
}

/** Every changed workload in `namespaces` (undefined: the whole cluster). */
export async function findLeftovers(
  api: KubeApi,
  undoBook: UndoBook,
  signer: Signer,
  namespaces: string[] | undefined,
): Promise<Leftover[]> {
  const found: Leftover[] = [];
  for (const { kind, resource } of SUPPORTED_KINDS) {
    const objects: Workload[] = [];
    for (const ns of namespaces ?? [undefined]) {
      objects.push(
        ...(await api.list<Workload>(ns ? workloadPath(ns, resource) : `/apis/apps/v1/${resource}`)),
      );
    }
    for (const object of objects) {
      const namespace = object.metadata?.namespace ?? '';
      const undo = undoBook.recorded(object, workloadPath(namespace, resource, object.metadata?.name));
      if (!undo) continue;
      const name = object.metadata?.name ?? '';
      const state = recordedState(signer, object);
      const label = `${kind} ${namespace}/${name}`;
      // A state is only believed about the very workload it sits on (copied elsewhere, it is not).
      const key =
        state?.mode === 'expose' ? `${namespace}/expose/${name}` : `${namespace}/${resource}/${name}`;
      const own = state?.key === key && state.name === name;
      found.push(own ? { label, namespace, undo, state } : { label, namespace, undo });
    }
  }
  return found;
}
