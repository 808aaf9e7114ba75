// Changes to the cluster that can be undone: a workload's template/replicas and Service ports
// are changed together with an annotation recording the originals, so that whoever restores
// (the manager on leave, on lease expiry, or a restarted manager) needs nothing but the cluster.
// Anyone who may annotate a workload can write such an annotation, so a record is trusted only
// when it carries the manager's HMAC (key from the install's Secret), names the workload that
// carries it, stays in that workload's namespace, and deletes only objects telepod labelled.
import * as z from 'zod/mini';
import { CLAIM_ANNOTATION_PREFIX } from '../protocol/claims.ts';
import { MANAGED_BY, UNDO_ANNOTATION, UNDO_MAC_ANNOTATION } from '../protocol/intercept.ts';
import { isNotFound, KubeApiError, type KubeApi, type KubeObject } from './kube-api.ts';
import { bridgePaths, numericTarget, ourBridges, removeBridge } from './bridge-slices.ts';
import { waitEndpointPorts } from './rollout.ts';
import type { Signer } from './signer.ts';
import type { PodTemplate, Service, ServicePort, Workload } from './workloads.ts';

const NAME = '[a-z0-9]([-a-z0-9.]*[a-z0-9])?';
const WORKLOAD_PATH = new RegExp(
  `^/apis/apps/v1/namespaces/(${NAME})/(deployments|statefulsets|replicasets)/${NAME}$`,
);
const SERVICE_PATH = (ns: string) => new RegExp(`^/api/v1/namespaces/${ns}/services/${NAME}$`);
const DELETABLE_PATH = (ns: string) =>
  new RegExp(
    `^(/api/v1/namespaces/${ns}/(configmaps|services)|/apis/apps/v1/namespaces/${ns}/deployments)/${NAME}$`,
  );

const UndoRecordSchema = z.object({
  /** The workload's own API path. */
  workload: z.string().check(z.regex(WORKLOAD_PATH)),
  template: z.optional(z.looseObject({ spec: z.looseObject({ containers: z.array(z.looseObject({})) }) })),
  replicas: z.optional(z.int().check(z.gte(0))),
  services: z.array(z.object({ path: z.string(), ports: z.array(z.looseObject({})) })),
  /** Objects created for the change, deleted on restore. */
  deletes: z.array(z.string()),
  /** ReplicaSets do not roll their pods on a template change: these pods are deleted instead. */
  podsToRoll: z.optional(
    z.object({
      namespace: z.string(),
      selector: z.string().check(z.minLength(1), z.maxLength(4096)),
      owner: z.string().check(z.minLength(1), z.maxLength(64)),
    }),
  ),
});

export interface UndoRecord {
  workload: string;
  template?: PodTemplate;
  replicas?: number;
  services: { path: string; ports: ServicePort[] }[];
  deletes: string[];
  /** ReplicaSets do not roll their pods on a template change: their own pods (by owner uid) are deleted instead. */
  podsToRoll?: { namespace: string; selector: string; owner: string };
}

/** Why a record may not be used, or undefined when it stays inside its workload's namespace. */
export function undoProblem(undo: UndoRecord): string | undefined {
  const namespace = WORKLOAD_PATH.exec(undo.workload)?.[1];
  if (!namespace) return `workload ${undo.workload} is not a workload path`;
  const service = undo.services.find((s) => !SERVICE_PATH(namespace).test(s.path));
  if (service) return `service ${service.path} is not in namespace ${namespace}`;
  const deletion = undo.deletes.find((d) => !DELETABLE_PATH(namespace).test(d));
  if (deletion) return `${deletion} is not an object telepod creates in namespace ${namespace}`;
  if (undo.podsToRoll && undo.podsToRoll.namespace !== namespace) {
    return `pods to roll are not in namespace ${namespace}`;
  }
  return undefined;
}

/**
 * The annotations telepod put on a workload (undo record, intercept holders and state, claims)
 * taken off: every key in telepod's own domains.
 */
function withoutTelepodAnnotations(annotations: Record<string, string> = {}): Record<string, string> {
  return Object.fromEntries(
    Object.entries(annotations).filter(
      ([key]) => !key.startsWith('telepod.io/') && !key.startsWith(CLAIM_ANNOTATION_PREFIX),
    ),
  );
}

/** Read-modify-write with the API server's optimistic concurrency, retried on conflicts. */
/** Whether two entries of a Service's port list are the same port: number and protocol. */
export function samePort(a: ServicePort, b: ServicePort): boolean {
  return a.port === b.port && (a.protocol ?? 'TCP') === (b.protocol ?? 'TCP');
}

/**
 * `current` ports with the targetPort each has in `wanted` (the same port and protocol): only
 * what telepod moves changes, so an edit made to the Service meanwhile (a new port, a renamed
 * one, an appProtocol) stays.
 */
export function retargeted(current: ServicePort[] | undefined, wanted: ServicePort[]): ServicePort[] {
  return (current ?? []).map((port) => {
    const target = wanted.find((w) => samePort(w, port));
    if (!target) return port;
    const moved = { ...port, targetPort: target.targetPort };
    if (target.targetPort === undefined) delete moved.targetPort;
    return moved;
  });
}

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

const ignoreNotFound = (err: unknown) => {
  if (!isNotFound(err)) throw err;
};

/** Writes, checks and carries out undo records, signing them with the install's key. */
export class UndoBook {
  constructor(
    private readonly api: KubeApi,
    private readonly signer: Signer,
    private readonly log: (message: string) => void,
  ) {}

  /** The annotations that record `undo` on the object it restores. */
  annotations(undo: UndoRecord): Record<string, string> {
    const text = JSON.stringify(undo);
    return { [UNDO_ANNOTATION]: text, [UNDO_MAC_ANNOTATION]: this.signer.sign(text) };
  }

  /**
   * Changes the workload and records, on the workload itself, how to undo that and the Service
   * changes `undo` names (made right after by `pointServices`, with bridge slices for the old pods).
   */
  async apply(undo: UndoRecord, change: { template?: PodTemplate; replicas?: number }): Promise<void> {
    await update<Workload>(this.api, undo.workload, (workload) => {
      workload.metadata!.annotations = { ...workload.metadata!.annotations, ...this.annotations(undo) };
      if (change.template) workload.spec.template = change.template;
      if (change.replicas !== undefined) workload.spec.replicas = change.replicas;
    });
    await this.rollPods(undo.podsToRoll);
  }

  /**
   * Sets Services' ports. Called for an intercept once its rollout has begun: the moved
   * targetPorts name the agent's ports, which only new pods declare, and bridge slices
   * (bridge-slices.ts) hold the old pods meanwhile.
   */
  async pointServices(services: { path: string; ports: ServicePort[] }[]): Promise<void> {
    for (const service of services) {
      await update<Service>(
        this.api,
        service.path,
        (s) => (s.spec.ports = retargeted(s.spec.ports, service.ports)),
      ).catch(ignoreNotFound); // a Service deleted meanwhile has nothing to point
    }
  }

  /**
   * Puts everything recorded back; safe to repeat, and a vanished object is not an error. The
   * Services first: while the workload's pods still carry the agent, the app serves its own
   * port in each of them, so moving a targetPort back drops nothing.
   */
  async restore(undo: UndoRecord): Promise<void> {
    const problem = undoProblem(undo);
    if (problem) throw new Error(`refusing an undo record: ${problem}`);
    for (const service of undo.services) {
      await update<Service>(
        this.api,
        service.path,
        (s) => (s.spec.ports = retargeted(s.spec.ports, service.ports)),
      ).catch(ignoreNotFound);
      await this.removeBridges(service);
    }
    await update<Workload>(this.api, undo.workload, (workload) => {
      workload.metadata!.annotations = withoutTelepodAnnotations(workload.metadata!.annotations);
      if (undo.template) workload.spec.template = undo.template;
      if (undo.replicas !== undefined) workload.spec.replicas = undo.replicas;
    }).catch(ignoreNotFound);
    for (const path of undo.deletes) await this.removeOurs(path);
    await this.rollPods(undo.podsToRoll);
  }

  /**
   * Deletes the bridge slices of a Service pointed back (a rollout that did not finish), before
   * the record goes: once the Service's own slices carry its numeric targets again (at most
   * 5 s), so that the old pods are never out of both.
   */
  private async removeBridges(service: { path: string; ports: ServicePort[] }): Promise<void> {
    const [, namespace, name] = /^\/api\/v1\/namespaces\/([^/]+)\/services\/([^/]+)$/.exec(service.path)!;
    const present = await ourBridges(this.api, bridgePaths(namespace!, [name!]));
    if (!present.length) return;
    const targets = service.ports.filter((p) => !isNaN(Number(p.targetPort ?? p.port))).map(numericTarget);
    await waitEndpointPorts(this.api, namespace!, [{ name: name!, ports: targets }], Date.now() + 5000).catch(
      () => this.log(`restoring ${service.path}: its slices did not carry ${targets.join(', ')} in 5 s`),
    );
    for (const path of present) await removeBridge(this.api, path);
  }

  /** Deletes an object only if telepod created it. */
  private async removeOurs(path: string): Promise<void> {
    const object = await this.api.get(path).catch((err: unknown) => (ignoreNotFound(err), undefined));
    if (!object) return;
    if (
      object.metadata?.labels?.['app.kubernetes.io/managed-by'] !== MANAGED_BY['app.kubernetes.io/managed-by']
    ) {
      return this.log(`not deleting ${path}: telepod did not create it`);
    }
    await this.api.remove(path).catch(ignoreNotFound);
  }

  private async rollPods(target: UndoRecord['podsToRoll']): Promise<void> {
    if (!target?.selector) return;
    const path = `/api/v1/namespaces/${target.namespace}/pods`;
    const pods = await this.api.list(`${path}?labelSelector=${encodeURIComponent(target.selector)}`);
    // Only the ReplicaSet's own pods: other workloads' pods may carry the same labels.
    const own = pods.filter((p) => p.metadata?.ownerReferences?.some((o) => o.uid === target.owner));
    await Promise.all(own.map((p) => this.api.remove(`${path}/${p.metadata!.name!}`).catch(() => undefined)));
  }

  /**
   * The undo record `object` (at API path `ownPath`) carries, if telepod changed it: signed by
   * this install, about this very object, inside its namespace. A record that fails any check
   * is logged and ignored.
   */
  recorded(object: KubeObject, ownPath: string): UndoRecord | undefined {
    const text = object.metadata?.annotations?.[UNDO_ANNOTATION];
    if (text === undefined) return undefined;
    const refuse = (why: string) => void this.log(`ignoring the undo record on ${ownPath}: ${why}`);
    if (!this.signer.verify(text, object.metadata?.annotations?.[UNDO_MAC_ANNOTATION]))
      return refuse('not signed by this install');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      return refuse('not JSON');
    }
    const result = UndoRecordSchema.safeParse(parsed);
    if (!result.success) return refuse(result.error.issues[0]?.message ?? 'malformed');
    const undo = result.data as unknown as UndoRecord;
    // ReplicaSets inherit their Deployment's annotations: only the changed object itself counts.
    if (undo.workload !== ownPath) return undefined;
    const problem = undoProblem(undo);
    if (problem) return refuse(problem);
    return undo;
  }
}

/** The workload as it was before the change `undo` records. */
export function asBefore(workload: Workload, undo: UndoRecord): Workload {
  return undo.template ? { ...workload, spec: { ...workload.spec, template: undo.template } } : workload;
}

/** The Service as it was before the change `undo` records. */
export function serviceBefore(service: Service, undo: UndoRecord): Service {
  const recorded = undo.services.find((u) => u.path.endsWith(`/services/${service.metadata?.name}`));
  return recorded ? { ...service, spec: { ...service.spec, ports: recorded.ports } } : service;
}
