// Bridge EndpointSlices: while an intercept's rollout runs, a Service whose numeric targetPort
// has moved to the agent's named port reaches only the pods that have the agent; the pods that
// do not (the workload's old ones) would drop out of it at once. A bridge slice per Service and
// address family keeps those pods, at the port they serve, until the new pods are ready; then
// it goes. So the Service moves before the new pods are ready, and kube-proxy takes the new pods
// and the move in one sync: moving it afterwards cost kube-proxy a second sync (its minSyncPeriod
// is 1 s) in cold intercepts whose app missed its first readiness probe. A port the manager
// relays meanwhile (relay.ts) is not in the bridge but in a relay slice of its own, which names
// the manager's pod at the relay's port.
import net from 'node:net';
import { MANAGED_BY } from '../protocol/intercept.ts';
import { isNotFound, KubeApiError, type KubeApi, type KubeObject } from './kube-api.ts';
import type { ServicePort } from './workloads.ts';

/** `endpointslice.kubernetes.io/managed-by` of a bridge: the EndpointSlice controller leaves it alone. */
export const BRIDGE_MANAGER = 'telepod.io';
/** The label that says which controller keeps an EndpointSlice. */
export const SLICE_MANAGER_LABEL = 'endpointslice.kubernetes.io/managed-by';
const ADDRESS_TYPES = ['IPv4', 'IPv6'] as const;

interface Endpoint {
  addresses: string[];
  conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
  targetRef?: { kind?: string; name?: string; namespace?: string; uid?: string };
  nodeName?: string;
  zone?: string;
}

/** An EndpointSlice as the bridge reads and writes it. */
export interface Slice extends KubeObject {
  addressType: string;
  endpoints?: Endpoint[] | null;
  ports?: { name?: string; port?: number; protocol?: string }[] | null;
}

/** A Service to bridge: its name and uid and, for each moved port, the numeric target the old pods serve. */
export interface BridgedService {
  name: string;
  /** The Service owns its bridges: deleting it deletes them. */
  uid?: string;
  ports: {
    name?: string;
    protocol?: string;
    target: number;
    /** The manager's relay port that takes this port's new connections until the new pods are ready. */
    relay?: number;
  }[];
}

/** The API path of a bridge slice. */
export function bridgePath(namespace: string, service: string, addressType: string): string {
  return `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices/telepod-bridge-${service}-${addressType.toLowerCase()}`;
}

/** The API path of a relay slice (its own prefix: no Service's bridge can take its name). */
export function relayPath(namespace: string, service: string, addressType: string): string {
  return `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices/telepod-relay-${service}-${addressType.toLowerCase()}`;
}

/** Every path the bridges and relay slices of `services` may take (each is deleted on close and on restore). */
export function bridgePaths(namespace: string, services: string[]): string[] {
  return services.flatMap((s) =>
    ADDRESS_TYPES.flatMap((type) => [bridgePath(namespace, s, type), relayPath(namespace, s, type)]),
  );
}

/** The number a Service port's traffic reaches in a pod, for a port that does not target a name. */
export function numericTarget(port: ServicePort): number {
  return Number(port.targetPort ?? port.port);
}

/** `endpointslice.kubernetes.io/managed-by` of the slices the EndpointSlice controller keeps. */
const CONTROLLER = 'endpointslice-controller.k8s.io';

/**
 * The endpoints a bridge of `addressType` carries: those of the Service's own slices (the
 * EndpointSlice controller's) whose pods are not in `ours`, once each, with the conditions the
 * controller gave them, so that kube-proxy treats them alike (a terminating pod that still
 * serves is used only when no pod is ready).
 */
export function bridgeEndpoints(slices: Slice[], addressType: string, ours: Set<string>): Endpoint[] {
  const kept = new Map<string, Endpoint>();
  for (const slice of slices) {
    if (slice.metadata?.labels?.[SLICE_MANAGER_LABEL] !== CONTROLLER) continue;
    if (slice.addressType !== addressType) continue;
    for (const endpoint of slice.endpoints ?? []) {
      const pod = endpoint.targetRef?.kind === 'Pod' ? endpoint.targetRef.name : undefined;
      const address = endpoint.addresses[0];
      if (!pod || ours.has(pod) || !address) continue;
      kept.set(address, {
        addresses: endpoint.addresses,
        ...(endpoint.conditions ? { conditions: endpoint.conditions } : {}),
        targetRef: endpoint.targetRef!,
        ...(endpoint.nodeName ? { nodeName: endpoint.nodeName } : {}),
        ...(endpoint.zone ? { zone: endpoint.zone } : {}),
      });
    }
  }
  return [...kept.values()].sort((a, b) => a.addresses[0]!.localeCompare(b.addresses[0]!));
}

/**
 * A bridge slice for `service` with `endpoints`, at the targets its moved ports had; in the
 * family of the relay slices (`relayedType`), the relayed ports are theirs and not the bridge's.
 */
export function bridgeSlice(
  namespace: string,
  service: BridgedService,
  addressType: string,
  endpoints: Endpoint[],
  relayedType?: string,
): Slice {
  const ports = service.ports.filter((p) => p.relay === undefined || addressType !== relayedType);
  const path = bridgePath(namespace, service.name, addressType);
  return ourSlice(namespace, path, service, addressType, endpoints, ports);
}

/** The relay slice of `service`: the manager's pod at the relay port of each relayed port. */
function relaySlice(namespace: string, service: BridgedService, address: string): Slice {
  const type = addressTypeOf(address);
  const ports = service.ports.flatMap((p) => (p.relay === undefined ? [] : [{ ...p, target: p.relay }]));
  const endpoint = { addresses: [address], conditions: { ready: true, serving: true, terminating: false } };
  return ourSlice(namespace, relayPath(namespace, service.name, type), service, type, [endpoint], ports);
}

function addressTypeOf(address: string): (typeof ADDRESS_TYPES)[number] {
  return net.isIPv6(address) ? 'IPv6' : 'IPv4';
}

function ourSlice(
  namespace: string,
  path: string,
  service: BridgedService,
  addressType: string,
  endpoints: Endpoint[],
  ports: BridgedService['ports'],
): Slice {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: path.slice(path.lastIndexOf('/') + 1),
      namespace,
      labels: {
        ...MANAGED_BY,
        'kubernetes.io/service-name': service.name,
        [SLICE_MANAGER_LABEL]: BRIDGE_MANAGER,
      },
      ...(service.uid
        ? { ownerReferences: [{ apiVersion: 'v1', kind: 'Service', name: service.name, uid: service.uid }] }
        : {}),
    },
    addressType,
    endpoints,
    ports: ports.map((p) => ({ name: p.name ?? '', port: p.target, protocol: p.protocol ?? 'TCP' })),
  };
}

/** The bridges of one injection's Services: made, kept to the old pods, and removed. */
export class Bridges {
  /** What each bridge this made holds now (its endpoints as JSON), to write only what changed. */
  private readonly written = new Map<string, string>();
  /** Bridge paths found empty and without a slice. */
  private readonly absent = new Set<string>();

  constructor(
    private readonly api: KubeApi,
    private readonly namespace: string,
    private readonly services: BridgedService[],
    /** The manager pod's address, named by the relay slices of relayed ports. */
    private readonly relayAddress?: string,
  ) {}

  /**
   * Writes each relay slice, and each bridge to hold the Services' endpoints of pods not in
   * `ours` (in the relays' family, at the ports nobody relays; a bridge with no port is not made).
   */
  async refresh(ours: Set<string>): Promise<void> {
    const relayedType = this.relayAddress && addressTypeOf(this.relayAddress);
    for (const service of this.services) {
      if (this.relayAddress && service.ports.some((p) => p.relay !== undefined)) {
        const slice = relaySlice(this.namespace, service, this.relayAddress);
        await this.write(relayPath(this.namespace, service.name, slice.addressType), slice);
      }
      const selector = encodeURIComponent(`kubernetes.io/service-name=${service.name}`);
      const slices = await this.api.list<Slice>(
        `/apis/discovery.k8s.io/v1/namespaces/${this.namespace}/endpointslices?labelSelector=${selector}`,
      );
      for (const type of ADDRESS_TYPES) {
        const slice = bridgeSlice(this.namespace, service, type, [], relayedType);
        if (slice.ports?.length) slice.endpoints = bridgeEndpoints(slices, type, ours);
        await this.write(bridgePath(this.namespace, service.name, type), slice);
      }
    }
  }

  /** Removes every bridge and relay slice, also one a stopped manager left. */
  async close(): Promise<void> {
    for (const path of bridgePaths(
      this.namespace,
      this.services.map((s) => s.name),
    )) {
      if (this.written.has(path)) await this.api.remove(path).catch(ignoreNotFound);
      else if (!this.absent.has(path)) await removeBridge(this.api, path);
    }
    this.written.clear();
    this.absent.clear();
  }

  /** Writes `slice` at `path` if it changed; one with no endpoints is not made. */
  private async write(path: string, slice: Slice): Promise<void> {
    const text = JSON.stringify([slice.endpoints, slice.ports]);
    const before = this.written.get(path);
    if (before === text) return;
    if (before === undefined && !slice.endpoints?.length) {
      // Nothing to hold: no bridge, and none a stopped manager left (looked for once).
      if (!this.absent.has(path)) await removeBridge(this.api, path);
      this.absent.add(path);
      return;
    }
    if (before !== undefined) {
      await this.api.replace(path, slice);
    } else {
      await this.api.create(path.slice(0, path.lastIndexOf('/')), slice).catch(async (err: unknown) => {
        if (!(err instanceof KubeApiError && err.status === 409)) throw err;
        // One left by a manager that stopped mid-rollout is taken over; a slice not telepod's is not.
        const existing = await this.api.get<Slice>(path);
        if (!isBridge(existing)) throw new Error(`EndpointSlice ${path} exists and is not telepod's`);
        await this.api.replace(path, slice);
      });
    }
    this.written.set(path, text);
  }
}

function isBridge(slice: Slice): boolean {
  const labels = slice.metadata?.labels ?? {};
  return (
    labels[SLICE_MANAGER_LABEL] === BRIDGE_MANAGER && labels[MANAGED_BY_KEY] === MANAGED_BY[MANAGED_BY_KEY]
  );
}

const MANAGED_BY_KEY = 'app.kubernetes.io/managed-by';

/** Those of `paths` where a bridge of telepod's is. */
export async function ourBridges(api: KubeApi, paths: string[]): Promise<string[]> {
  const found: string[] = [];
  for (const path of paths) {
    try {
      if (isBridge(await api.get<Slice>(path))) found.push(path);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
  return found;
}

function ignoreNotFound(err: unknown): void {
  if (!isNotFound(err)) throw err;
}

/** Deletes the bridge at `path` if there is one and it is telepod's. */
export async function removeBridge(api: KubeApi, path: string): Promise<void> {
  try {
    if (isBridge(await api.get<Slice>(path))) await api.remove(path);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
