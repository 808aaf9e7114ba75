// What a manager knows of an injection, written on the changed workload beside its undo record
// and signed like it: the agents' injection id and ports, and which session holds which
// intercept. A restarted manager reads it back and takes the intercepts of live sessions over
// instead of undoing them. The pod's environment is never written here (it holds secrets); the
// agents report it again when they register with the new manager.
import * as z from 'zod/mini';
import {
  INTERCEPT_MODES,
  INTERCEPTS_ANNOTATION,
  type AgentPort,
  type InterceptHolder,
  type InterceptInfo,
  describeFilter,
} from '../protocol/intercept.ts';
import { portNumber, RequestFilterSchema, uuid } from '../protocol/requests.ts';
import type { KubeApi, KubeObject } from './kube-api.ts';
import type { Signer } from './signer.ts';

const STATE_ANNOTATION = 'telepod.io/state';
const STATE_MAC_ANNOTATION = 'telepod.io/state-mac';

/** An injection as it is written down: everything but its live agents and the pod's context. */
export interface InjectionState {
  key: string;
  name: string;
  kind: string;
  mode: InterceptInfo['mode'];
  id: string;
  agentPorts: AgentPort[];
  intercepts: { sessionId: string; info: InterceptInfo }[];
}

const InterceptInfoSchema = z.looseObject({
  id: uuid,
  mode: z.enum(INTERCEPT_MODES),
  namespace: z.string(),
  workload: z.string(),
  kind: z.string(),
  holder: z.string(),
  ports: z.array(z.object({ local: portNumber, remote: z.string(), agentPort: portNumber })),
  filter: z.optional(RequestFilterSchema),
  mirror: z.optional(z.boolean()),
});

const InjectionStateSchema = z.object({
  key: z.string().check(z.maxLength(512)),
  name: z.string().check(z.maxLength(253)),
  kind: z.string().check(z.maxLength(64)),
  mode: z.enum(INTERCEPT_MODES),
  id: uuid,
  agentPorts: z.array(z.object({ listen: portNumber, forward: z.optional(portNumber) })),
  intercepts: z.array(z.object({ sessionId: uuid, info: InterceptInfoSchema })),
});

/** What `publishedAnnotations` needs of an injection. */
type Published = Omit<InjectionState, 'intercepts'> & {
  intercepts: Map<string, { sessionId: string; info: InterceptInfo }>;
};

/**
 * The annotations an injection keeps on its workload: who intercepts it (`telepod list` reads
 * them with the developer's own rights) and, signed, its state for a restarted manager.
 */
function publishedAnnotations(signer: Signer, injection: Published): Record<string, string> {
  const active = [...injection.intercepts.values()];
  const holders: InterceptHolder[] = active.map((a) => ({
    mode: a.info.mode,
    holder: a.info.holder,
    ports: a.info.ports.map((p) => `${p.remote} -> localhost:${p.local}`),
    ...(a.info.filter ? { filter: describeFilter(a.info.filter) } : {}),
    ...(a.info.mirror ? { mirror: true } : {}),
  }));
  const { key, name, kind, mode, id, agentPorts } = injection;
  return {
    [INTERCEPTS_ANNOTATION]: JSON.stringify(holders),
    ...stateAnnotations(signer, { key, name, kind, mode, id, agentPorts, intercepts: active }),
  };
}

/**
 * Writes who intercepts the workload on the workload itself (`telepod list` reads it with the
 * developer's own rights, so listing needs nothing of the manager) and, signed, the injection's
 * state, which a restarted manager takes back. Tried three times; then only logged, as the
 * intercept works and only a restart of this manager would not find it again.
 */
export async function publishState(
  api: KubeApi,
  signer: Signer,
  injection: Published & { undo: { workload: string } },
  log: (message: string) => void,
): Promise<void> {
  const annotations = publishedAnnotations(signer, injection);
  for (let attempt = 1; ; attempt++) {
    try {
      await api.mergePatch(injection.undo.workload, { metadata: { annotations } });
      return;
    } catch (err) {
      if (attempt >= 3)
        return log(`cannot record the intercepts on ${injection.key}: ${(err as Error).message}`);
      await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
    }
  }
}

/** The annotations that record `state` (merged into the workload's). */
export function stateAnnotations(signer: Signer, state: InjectionState): Record<string, string> {
  const text = JSON.stringify(state);
  return { [STATE_ANNOTATION]: text, [STATE_MAC_ANNOTATION]: signer.sign(text) };
}

/** The state `object` carries, if this install signed it and it is well formed. */
export function recordedState(signer: Signer, object: KubeObject): InjectionState | undefined {
  const text = object.metadata?.annotations?.[STATE_ANNOTATION];
  if (text === undefined || !signer.verify(text, object.metadata?.annotations?.[STATE_MAC_ANNOTATION])) {
    return undefined;
  }
  try {
    const result = InjectionStateSchema.safeParse(JSON.parse(text));
    return result.success ? result.data : undefined;
  } catch {
    return undefined;
  }
}
