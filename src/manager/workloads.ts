// Finding what a developer names: the workload (Deployment, StatefulSet, ReplicaSet), the
// Services that select its pods, and which Service port lands on which container port. Every
// bad name is refused here, before anything in the cluster changes.
import { usageError } from '../protocol/errors.ts';
import type { PortRequest } from '../protocol/requests.ts';
import { isNotFound, type KubeApi, type KubeObject } from './kube-api.ts';

export interface ContainerPort {
  name?: string;
  containerPort: number;
  protocol?: string;
}
export interface Container {
  name: string;
  ports?: ContainerPort[];
  [field: string]: unknown;
}
export interface PodTemplate {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: { containers: Container[]; volumes?: unknown[]; [field: string]: unknown };
}
export type Workload = KubeObject & {
  kind: string;
  spec: {
    replicas?: number;
    selector: { matchLabels?: Record<string, string> };
    template: PodTemplate;
    [field: string]: unknown;
  };
  status?: Record<string, unknown>;
};
export interface ServicePort {
  name?: string;
  port: number;
  targetPort?: number | string;
  protocol?: string;
  appProtocol?: string;
}
export type Service = KubeObject & {
  spec: {
    selector?: Record<string, string>;
    ports?: ServicePort[];
    clusterIP?: string;
    internalTrafficPolicy?: string;
    externalTrafficPolicy?: string;
  };
};

export const SUPPORTED_KINDS = [
  { kind: 'Deployment', resource: 'deployments' },
  { kind: 'StatefulSet', resource: 'statefulsets' },
  { kind: 'ReplicaSet', resource: 'replicasets' },
] as const;

export function workloadPath(namespace: string, resource: string, name = ''): string {
  return `/apis/apps/v1/namespaces/${namespace}/${resource}${name ? `/${name}` : ''}`;
}

export function servicePath(namespace: string, name = ''): string {
  return `/api/v1/namespaces/${namespace}/services${name ? `/${name}` : ''}`;
}

export interface FoundWorkload {
  resource: string;
  object: Workload;
}

async function exists(api: KubeApi, path: string): Promise<boolean> {
  return api.get(path).then(
    () => true,
    (err: unknown) => {
      if (isNotFound(err)) return false;
      throw err;
    },
  );
}

/** The named workload, or a clear refusal naming what exists under that name instead. */
export async function findWorkload(api: KubeApi, namespace: string, name: string): Promise<FoundWorkload> {
  for (const { kind, resource } of SUPPORTED_KINDS) {
    try {
      const object = await api.get<Workload>(workloadPath(namespace, resource, name));
      const owner = object.metadata?.ownerReferences?.find((o) => o.kind === 'Deployment');
      if (owner) {
        throw usageError(
          `ReplicaSet ${name} belongs to Deployment ${owner.name}: intercept the Deployment instead`,
        );
      }
      return { resource, object: { ...object, kind } };
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  const others = [
    ['DaemonSet', `/apis/apps/v1/namespaces/${namespace}/daemonsets/${name}`],
    ['Job', `/apis/batch/v1/namespaces/${namespace}/jobs/${name}`],
    ['Pod', `/api/v1/namespaces/${namespace}/pods/${name}`],
  ] as const;
  for (const [kind, path] of others) {
    if (await exists(api, path)) {
      throw usageError(
        `${kind} ${name} cannot be intercepted: telepod intercepts Deployments, StatefulSets and ReplicaSets`,
      );
    }
  }
  throw usageError(`no Deployment, StatefulSet or ReplicaSet named ${name} in namespace ${namespace}`);
}

function selects(service: Service, labels: Record<string, string>): boolean {
  const selector = service.spec.selector ?? {};
  const keys = Object.keys(selector);
  return keys.length > 0 && keys.every((key) => labels[key] === selector[key]);
}

/**
 * The Services whose selector matches the workload's pods. `cached` lists from the API server's
 * watch cache (resourceVersion=0) instead of a consistent list, which on Kubernetes ≥ 1.31 is
 * served from that cache too but, right after any write in the cluster, waits for it to catch
 * up (62-64 ms on the testbed at every re-intercept: the daemon has just written its claims);
 * it may miss a change made in the last moment.
 */
export async function selectingServices(
  api: KubeApi,
  namespace: string,
  workload: Workload,
  { cached = false }: { cached?: boolean } = {},
): Promise<Service[]> {
  const labels = workload.spec.template.metadata?.labels ?? {};
  const path = servicePath(namespace) + (cached ? '?resourceVersion=0' : '');
  const all = (await api.list<Service>(path)).filter((s) => selects(s, labels));
  const name = workload.metadata?.name ?? '';
  if (!all.length) throw usageError(`no Service selects the pods of ${workload.kind} ${name}`);
  return all;
}

/** The Service named `only` among `all` (selectingServices'), or a usage error naming them. */
export function onlyService(all: Service[], workload: Workload, only: string): Service[] {
  const chosen = all.filter((s) => s.metadata?.name === only);
  if (!chosen.length) {
    const name = workload.metadata?.name ?? '';
    throw usageError(
      `Service ${only} does not select ${workload.kind} ${name} (Services that do: ${names(all)})`,
    );
  }
  return chosen;
}

function names(services: Service[]): string {
  return services.map((s) => s.metadata?.name ?? '').join(', ');
}

function describePort(p: ServicePort): string {
  return p.name ? `${p.port}/${p.name}` : String(p.port);
}

export function findContainer(workload: Workload, name?: string): Container {
  const containers = workload.spec.template.spec.containers;
  if (!name) return containers[0]!;
  const found = containers.find((c) => c.name === name);
  if (!found) {
    throw usageError(
      `container ${name} not found in ${workload.kind} ${workload.metadata?.name} ` +
        `(containers: ${containers.map((c) => c.name).join(', ')})`,
    );
  }
  return found;
}

/** A Service port and the container port it lands on. */
export interface ResolvedPort {
  local: number;
  service: Service;
  servicePort: ServicePort;
  /** The container port number the Service's traffic reaches. */
  containerPort: number;
  /** Set when the Service targets the port by name. */
  targetName?: string;
}

/** Where a Service port's traffic lands in the pod. */
export function targetOf(workload: Workload, port: ServicePort): { number: number; name?: string } {
  const target = port.targetPort ?? port.port;
  if (typeof target === 'number') return { number: target };
  if (/^\d+$/.test(target)) return { number: Number(target) };
  for (const container of workload.spec.template.spec.containers) {
    const found = container.ports?.find((p) => p.name === target);
    if (found) return { number: found.containerPort, name: target };
  }
  throw usageError(
    `a Service targets port name "${target}", which no container of ${workload.kind} ` +
      `${workload.metadata?.name} declares`,
  );
}

/** Each requested port matched to exactly one TCP Service port of the given Services. */
export function resolveServicePorts(
  workload: Workload,
  services: Service[],
  requests: PortRequest[],
): ResolvedPort[] {
  const candidates = services.flatMap((service) =>
    (service.spec.ports ?? [])
      .filter((p) => (p.protocol ?? 'TCP') === 'TCP')
      .map((servicePort) => ({ service, servicePort })),
  );
  const listing = candidates
    .map((c) => `${c.service.metadata?.name}:${describePort(c.servicePort)}`)
    .join(', ');
  return requests.map((request) => {
    const matches = request.remote
      ? candidates.filter(
          (c) => c.servicePort.name === request.remote || String(c.servicePort.port) === request.remote,
        )
      : candidates;
    if (!matches.length) {
      throw usageError(
        `port ${request.remote} is not exposed by the Services of ${workload.metadata?.name} (${listing})`,
      );
    }
    if (matches.length > 1) {
      throw usageError(
        request.remote
          ? `several Service ports match ${request.remote} (${listing}): choose one with --service`
          : `${workload.metadata?.name} is reached on several ports (${listing}): choose one with --port <local>:<port>`,
      );
    }
    const { service, servicePort } = matches[0]!;
    const target = targetOf(workload, servicePort);
    return {
      local: request.local,
      service,
      servicePort,
      containerPort: target.number,
      ...(target.name ? { targetName: target.name } : {}),
    };
  });
}

export function podSelector(workload: Workload): string {
  return Object.entries(workload.spec.selector.matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
