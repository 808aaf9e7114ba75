// Which cluster connections the daemon may send straight to a pod over a port-forward, rather
// than through the traffic manager: connections to a Service's ClusterIP, once that address came
// in a cluster DNS answer for `<service>.<namespace>.svc.<domain>` and the Service's ready pods
// were read with the developer's rights. The Service is trusted only where its own spec gives
// that address. Endpoints are read again in the background when older than `freshMs`; until
// they are known, and whenever the developer may not read them, connections take the manager.
import type { Packet } from 'dns-packet';
import type { Logger } from 'pino';
import type { ServiceEndpoints } from '../kube/service-endpoints.ts';

/** A pod and port to open a connection to. */
export interface PodTarget {
  namespace: string;
  pod: string;
  port: number;
}

/** Addresses remembered from DNS answers at most; the oldest is forgotten first. */
const MAX_ADDRESSES = 4096;
/** Endpoints older than this are read again (the connection at hand still uses them). */
const FRESH_MS = 3_000;
/** After a refusal (403) a namespace, and after a failed dial a pod's port, take the manager's path for this long. */
const REFUSED_MS = 60_000;

/** Sets `key` last in `map`, forgetting the oldest entries past `max`. */
function remember<K, V>(map: Map<K, V>, key: K, value: V, max = MAX_ADDRESSES): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > max) map.delete(map.keys().next().value!);
}

interface Cached {
  endpoints?: ServiceEndpoints;
  readAt: number;
  reading: boolean;
}

/** Where a `ServiceRoutes` learns Services and reads their endpoints; `freshMs` between reads. */
export interface ServiceRoutesOptions {
  /** The cluster's DNS domain (`cluster.local`). */
  domain: string;
  /** Reads a Service's endpoints with the developer's rights. */
  read: (namespace: string, service: string) => Promise<ServiceEndpoints>;
  log: Logger;
  freshMs?: number;
}

/**
 * Which pod a connection to a Service address goes to: addresses learned from cluster DNS
 * answers, the Service's ready endpoints read in the background, and the failures remembered.
 */
export class ServiceRoutes {
  private readonly services = new Map<string, { namespace: string; service: string }>();
  private readonly endpoints = new Map<string, Cached>();
  /** Namespaces, and pods' ports (`ns/pod:port`), that take the manager until a time. */
  private readonly refused = new Map<string, number>();
  private readonly serviceName: RegExp;

  constructor(private readonly options: ServiceRoutesOptions) {
    const domain = options.domain
      .toLowerCase()
      .replace(/\.$/, '')
      .replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    this.serviceName = new RegExp(
      `^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\\.([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)\\.svc\\.${domain}$`,
    );
  }

  /** A cluster DNS answer: remembers which Service its A records name. */
  learn(answer: Packet): void {
    for (const record of answer.answers ?? []) {
      if (record.type !== 'A' || typeof record.data !== 'string') continue;
      const match = this.serviceName.exec(record.name.toLowerCase().replace(/\.$/, ''));
      if (!match) continue;
      remember(this.services, record.data, { service: match[1]!, namespace: match[3]! });
    }
  }

  /**
   * Where a connection to `address:port` may go straight, when that is known now; starts a read
   * of the Service's endpoints when they are missing or old. A pod is picked at random, as
   * kube-proxy does.
   */
  route(address: string, port: number): PodTarget | undefined {
    const known = this.services.get(address);
    if (!known) return undefined;
    const { namespace, service } = known;
    if (this.isRefused(namespace)) return undefined;
    const key = `${namespace}/${service}`;
    let cached = this.endpoints.get(key);
    if (!cached) remember(this.endpoints, key, (cached = { readAt: 0, reading: false }));
    if (!cached.reading && Date.now() - cached.readAt > (this.options.freshMs ?? FRESH_MS)) {
      this.read(key, namespace, service, cached);
    }
    if (!cached.endpoints?.clusterIPs.includes(address)) return undefined;
    const pods = cached.endpoints.ports
      .get(port)
      ?.filter((p) => !this.isRefused(`${namespace}/${p.pod}:${p.port}`));
    if (!pods?.length) return undefined;
    const { pod, port: podPort } = pods[Math.floor(Math.random() * pods.length)]!;
    return { namespace, pod, port: podPort };
  }

  /**
   * The kubelet could not connect to `target` (its port listens on the pod IP only, or the pod
   * is gone): that pod's port takes the manager for a while, without a try each time.
   */
  failed(target: PodTarget): void {
    remember(this.refused, `${target.namespace}/${target.pod}:${target.port}`, Date.now() + REFUSED_MS);
  }

  /** The developer may not port-forward in `namespace`: its connections take the manager for a while. */
  refuse(namespace: string): void {
    remember(this.refused, namespace, Date.now() + REFUSED_MS);
  }

  private isRefused(key: string): boolean {
    const until = this.refused.get(key);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.refused.delete(key);
    return false;
  }

  private read(key: string, namespace: string, service: string, cached: Cached): void {
    cached.reading = true;
    this.options.read(namespace, service).then(
      (endpoints) => {
        cached.endpoints = endpoints;
        cached.readAt = Date.now();
        cached.reading = false;
      },
      (err: { code?: number; message?: string }) => {
        cached.readAt = Date.now();
        cached.reading = false;
        delete cached.endpoints;
        if (err.code === 403) this.refuse(namespace);
        this.options.log.debug({ service: key, err: err.message }, 'cannot read the endpoints of a Service');
      },
    );
  }
}
