// Where a Service's connections go, read with the developer's own rights: for each Service port,
// the ready pods behind it and the port each listens on, from the Service and its
// EndpointSlices (a named targetPort may resolve to another number in each pod). The daemon
// uses it to open a port-forward straight to one of those pods instead of relaying through the
// traffic manager (src/daemon/service-routes.ts). The slices are then watched, so that a rollout's
// new pods are known as soon as kube-proxy knows them.
import {
  CoreV1Api,
  DiscoveryV1Api,
  Watch,
  type KubeConfig,
  type V1EndpointSlice,
} from '@kubernetes/client-node';
import { AGENT_CONTAINER } from '../protocol/intercept.ts';
import { kubeName } from '../protocol/requests.ts';

/** A pod behind a Service port, and the port it listens on for it. */
export interface PodPort {
  pod: string;
  port: number;
}

/** A Service's addresses and, for each of its TCP ports, the ready pods behind it. */
export interface ServiceEndpoints {
  clusterIPs: string[];
  ports: Map<number, PodPort[]>;
  /** The resourceVersion of the slices' list: a watch from it misses no change. */
  version?: string;
}

/** The label the EndpointSlice controller puts on the slices it makes from a Service's selector. */
const MANAGED_BY = 'endpointslice.kubernetes.io/managed-by';
const CONTROLLER = 'endpointslice-controller.k8s.io';

/**
 * The ready pods behind each TCP port of a Service, from its EndpointSlices: an endpoint counts
 * when it is a Pod (targetRef) with a valid name, ready (absent means ready) and not
 * terminating, in a slice the EndpointSlice controller made (anyone who may create slices could
 * otherwise name any "pod", and the name goes into a URL). Ports are matched by name, as the
 * controller names them after the Service's ports.
 */
export function podPorts(
  servicePorts: { port: number; name?: string; protocol?: string }[],
  slices: V1EndpointSlice[],
): Map<number, PodPort[]> {
  const ports = new Map<number, PodPort[]>();
  for (const servicePort of servicePorts) {
    if ((servicePort.protocol ?? 'TCP') !== 'TCP') continue;
    const pods: PodPort[] = [];
    for (const slice of slices) {
      if (slice.addressType !== 'IPv4' || slice.metadata?.labels?.[MANAGED_BY] !== CONTROLLER) continue;
      const port = slice.ports?.find(
        (p) => (p.name ?? '') === (servicePort.name ?? '') && (p.protocol ?? 'TCP') === 'TCP',
      )?.port;
      if (port === undefined) continue;
      for (const endpoint of slice.endpoints) {
        const ready = endpoint.conditions?.ready !== false && endpoint.conditions?.terminating !== true;
        const pod = endpoint.targetRef?.kind === 'Pod' ? endpoint.targetRef.name : undefined;
        if (ready && pod && kubeName.safeParse(pod).success) pods.push({ pod, port });
      }
    }
    ports.set(servicePort.port, pods);
  }
  return ports;
}

/**
 * Reads a Service, its EndpointSlices and its pods (three API calls) with `kc`'s rights. A
 * Service with no selector, or whose pods carry telepod's agent (an intercepted or dormant
 * workload), has no pods here: its connections take the manager's path, as before. Connections
 * to an agent are routed by it, per request or back to a workstation through the manager
 * anyway; and from the workstation back to itself through an agent, a connection went
 * unanswered for 60 s on the direct path in each of three full benches (not found why).
 */
export async function readServiceEndpoints(
  kc: KubeConfig,
  namespace: string,
  name: string,
): Promise<ServiceEndpoints> {
  const core = kc.makeApiClient(CoreV1Api);
  const [service, slices] = await Promise.all([
    core.readNamespacedService({ name, namespace }),
    kc.makeApiClient(DiscoveryV1Api).listNamespacedEndpointSlice({
      namespace,
      labelSelector: `kubernetes.io/service-name=${name}`,
    }),
  ]);
  const version = slices.metadata?.resourceVersion;
  const none: ServiceEndpoints = { clusterIPs: [], ports: new Map(), ...(version ? { version } : {}) };
  const selector = service.spec?.selector ?? {};
  if (!Object.keys(selector).length) return none;
  const pods = await core.listNamespacedPod({
    namespace,
    labelSelector: Object.entries(selector)
      .map(([key, value]) => `${key}=${value}`)
      .join(','),
  });
  if (pods.items.some((pod) => pod.spec?.containers.some((c) => c.name === AGENT_CONTAINER))) return none;
  const clusterIPs = service.spec?.clusterIPs ?? (service.spec?.clusterIP ? [service.spec.clusterIP] : []);
  return { ...none, clusterIPs, ports: podPorts(service.spec?.ports ?? [], slices.items) };
}

/** Why a watch ended: an HTTP status where the API server refused it (403: no `watch` right). */
export type WatchEnd = (Error & { statusCode?: number }) | null;

/** The API server ends a watch after this many seconds, plus up to WATCH_JITTER_S (spread). */
const WATCH_TIMEOUT_S = 300;
const WATCH_JITTER_S = 60;
/** A watch still open this long after its timeout has lost its connection without a word. */
const WATCH_GRACE_MS = 30_000;

/**
 * Watches the EndpointSlices of Service `name` from `version` with `kc`'s rights: `changed` on
 * each change (what changed is read again by the caller), `ended` once when the watch ends
 * (the API server ends it after about five minutes, an expired version with an error; one not
 * ended by then has lost its connection and is ended here). Returns the function that stops it
 * (after which neither is called). client-node hands out a watch's abort only once the API
 * server has answered, so a request stopped before its answer ends when that answer comes.
 */
export function watchServiceSlices(
  kc: KubeConfig,
  namespace: string,
  name: string,
  version: string,
  changed: () => void,
  ended: (why: WatchEnd) => void,
): () => void {
  let stopped = false;
  let controller: AbortController | undefined;
  const timeoutSeconds = WATCH_TIMEOUT_S + Math.floor(Math.random() * WATCH_JITTER_S);
  const stop = () => {
    stopped = true;
    clearTimeout(overdue);
    controller?.abort();
  };
  const end = (why: WatchEnd) => {
    if (stopped) return;
    stop();
    ended(why);
  };
  const overdue = setTimeout(
    () => end(new Error('the watch outlived its timeout: its connection was lost')),
    timeoutSeconds * 1000 + WATCH_GRACE_MS,
  ).unref();
  const event = (type: string, object: { code?: number; message?: string }) => {
    if (stopped) return;
    if (type === 'ERROR') {
      end(Object.assign(new Error(object.message ?? 'watch error'), { statusCode: object.code }));
    } else if (type !== 'BOOKMARK') {
      changed();
    }
  };
  new Watch(kc)
    .watch(
      `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(namespace)}/endpointslices`,
      { labelSelector: `kubernetes.io/service-name=${name}`, resourceVersion: version, timeoutSeconds },
      event,
      (err: WatchEnd) => end(err ?? null),
    )
    .then(
      (c) => (stopped ? c.abort() : (controller = c)),
      (err: Error) => end(err),
    );
  return stop;
}
