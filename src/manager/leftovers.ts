// What earlier managers left in the cluster: every workload carrying an undo record this
// install signed, with the injection state beside it when there is one. A starting manager
// takes back the intercepts of live sessions and restores the rest.
import { sweepClaimObjects } from './claims.ts';
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

/** What taking back leftovers needs of the manager's intercepts. */
export interface LeftoverHost {
  api: KubeApi;
  undoBook: UndoBook;
  signer: Signer;
  namespaces: string[] | undefined;
  /** Whether an injection with this key or id is held already. */
  holds(key: string, id: string): boolean;
  /** Holds a left injection again with the intercepts `kept` of it (all of them: `complete`). */
  adopt(leftover: Required<Leftover>, kept: InjectionState['intercepts'], complete: boolean): Promise<void>;
}

/**
 * What a starting manager does first: the intercepts of sessions still live (`live`, taken
 * back from their Leases) are taken over as they were, so that their agents and daemons find
 * them again; whatever belongs to no live session is restored. Answers what it did, for the log.
 */
export async function takeBackLeftovers(host: LeftoverHost, live: Set<string>): Promise<string[]> {
  const done: string[] = [];
  const swept = await sweepClaimObjects(host.api, host.namespaces).catch((err: Error) => {
    done.push(`could not sweep claim objects (${err.message})`);
    return 0;
  });
  if (swept) done.push(`deleted ${swept} claim objects`);
  for (const leftover of await findLeftovers(host.api, host.undoBook, host.signer, host.namespaces)) {
    const { label, undo, state } = leftover;
    const kept = state?.intercepts.filter((i) => live.has(i.sessionId)) ?? [];
    if (!state || !kept.length || host.holds(state.key, state.id)) {
      // One workload that cannot be restored now must not keep the manager from serving.
      await host.undoBook.restore(undo).then(
        () => done.push(`restored ${label}`),
        (err: Error) => done.push(`could not restore ${label} (${err.message})`),
      );
      continue;
    }
    await host.adopt({ ...leftover, state }, kept, kept.length === state.intercepts.length);
    done.push(`took back ${label} (${kept.length} intercepts)`);
  }
  return done;
}
