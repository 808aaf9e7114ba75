// Which cluster connections the daemon may send straight to a pod over a port-forward, rather
// than through the traffic manager: connections to a Service's ClusterIP, once that address came
// in a cluster DNS answer for `<service>.<namespace>.svc.<domain>` and the Service's ready pods
// were read with the developer's rights. The Service is trusted only where its own spec gives
// that address. Once read for such an address, a Service's EndpointSlices are watched and each
// change reads it again at once (a rollout's pods are known as kube-proxy knows them), besides a
// read every WATCHED_FRESH_MS while in use; without a watch (not allowed, past MAX_WATCHES, a
// failed read) endpoints are read again in the background when older than `freshMs`. Until
// they are known, and whenever the developer may not read them, connections take the manager.
import type { Packet } from 'dns-packet';
import type { Logger } from 'pino';
import type { ServiceEndpoints, WatchEnd } from '../kube/service-endpoints.ts';

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
/**
 * With a watch, a read only in case the watch died without a word (a laptop's sleep, a VPN's
 * change) or the Service's own spec changed (its slices may not).
 */
const WATCHED_FRESH_MS = 10_000;
/** Services watched at most (kube-proxy watches every slice of the cluster). */
const MAX_WATCHES = 64;
/** A watch unused this long gives its place to a Service in use. */
const WATCH_IDLE_MS = 300_000;
/** A watch that ended sooner than this after it began makes the next one wait WATCH_RETRY_MS. */
const SHORT_WATCH_MS = 10_000;
const WATCH_RETRY_MS = 1_000;
/** A read not answered by then has failed (client-node's calls have no timeout of their own). */
const READ_TIMEOUT_MS = 10_000;
/** Changes read the Service again at most this often (a rollout of many pods is many changes). */
const CHANGE_READ_GAP_MS = 100;
/**
 * A change to a watched Service unused for this long is not read until its next use, which
 * takes the manager's path meanwhile (nothing is routed on what the change made stale); nor
 * are endpoints this old that no watch kept.
 */
const IDLE_CHANGE_MS = 30_000;
/** After a refusal (403) a namespace, and after a failed dial a pod's port, take the manager's path for this long. */
const REFUSED_MS = 60_000;

/** Sets `key` last in `map`, forgetting the oldest entries past `max` (each passed to `forgotten`). */
function remember<K, V>(
  map: Map<K, V>,
  key: K,
  value: V,
  max = MAX_ADDRESSES,
  forgotten?: (value: V) => void,
): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > max) {
    const [oldest, old] = map.entries().next().value!;
    map.delete(oldest);
    forgotten?.(old);
  }
}

interface Cached {
  endpoints?: ServiceEndpoints;
  readAt: number;
  reading: boolean;
  /** When a connection last asked for the Service, and for which of its addresses. */
  usedAt?: number;
  address?: string;
  /** A change came while a read was running: read again after it. */
  changedWhileReading?: boolean;
  /** A change came while the Service was unused: not routed until read again. */
  stale?: boolean;
  /** The read a change waits for (CHANGE_READ_GAP_MS after the last). */
  changeRead?: NodeJS.Timeout | undefined;
  /** Stops the watch of the Service's slices, while there is one. */
  stopWatch?: (() => void) | undefined;
  /** No new watch before this time (the last one ended soon after it began). */
  watchAfter?: number;
}

/** Watches a Service's slices from a version: `changed` per change, `ended` once; returns stop. */
export type WatchSlices = (
  namespace: string,
  service: string,
  version: string,
  changed: () => void,
  ended: (why: WatchEnd) => void,
) => () => void;

/** Where a `ServiceRoutes` learns Services and reads their endpoints; `freshMs` between reads. */
export interface ServiceRoutesOptions {
  /** The cluster's DNS domain (`cluster.local`). */
  domain: string;
  /** Reads a Service's endpoints with the developer's rights. */
  read: (namespace: string, service: string) => Promise<ServiceEndpoints>;
  /** Watches a Service's EndpointSlices (without it, endpoints are only read every `freshMs`). */
  watch?: WatchSlices;
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
  /** The entries whose slices are watched. */
  private readonly watched = new Map<string, Cached>();
  private changes = 0;
  private closed = false;
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
    const cached = this.endpoints.get(key) ?? { readAt: 0, reading: false };
    // Kept last used first: the Service forgotten past MAX_ADDRESSES is the one unused longest.
    remember(this.endpoints, key, cached, MAX_ADDRESSES, (old) => this.unwatch(old));
    const now = Date.now();
    if (!cached.stopWatch && now - cached.readAt > IDLE_CHANGE_MS) cached.stale = true;
    cached.usedAt = now;
    cached.address = address;
    const watched = cached.stopWatch && cached.endpoints;
    const freshMs = watched ? WATCHED_FRESH_MS : (this.options.freshMs ?? FRESH_MS);
    if (!cached.reading && (cached.stale || now - cached.readAt > freshMs)) {
      this.read(key, namespace, service, cached);
    }
    if (cached.stale || !cached.endpoints?.clusterIPs.includes(address)) return undefined;
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

  /** How many Services' slices are watched now. */
  get watchedServices(): number {
    return this.watched.size;
  }

  /** How many changes the watches have seen. */
  get endpointChanges(): number {
    return this.changes;
  }

  /** Stops every watch; nothing is read or watched from then on. */
  close(): void {
    this.closed = true;
    for (const cached of [...this.watched.values()]) this.unwatch(cached);
  }

  /**
   * Reads the Service's endpoints into `cached` (failing after READ_TIMEOUT_MS); once read, its
   * slices are watched if the address its connections asked for is one its spec gives, on a
   * Service with a selector (a Service the DNS answer named wrongly, or one that cannot be
   * routed, is never watched).
   */
  private read(key: string, namespace: string, service: string, cached: Cached): void {
    if (this.closed) return;
    cached.reading = true;
    cached.changedWhileReading = false;
    const current = () => !this.closed && this.endpoints.get(key) === cached;
    const done = () => {
      cached.readAt = Date.now();
      cached.reading = false;
      cached.stale = false;
      if (cached.changedWhileReading && current()) this.changed(key, namespace, service, cached);
    };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no answer in time')), READ_TIMEOUT_MS).unref();
    });
    Promise.race([this.options.read(namespace, service), timeout]).then(
      (endpoints) => {
        clearTimeout(timer);
        cached.endpoints = endpoints;
        const address = cached.address;
        if (address && endpoints.clusterIPs.includes(address) && current()) {
          this.watch(key, namespace, service, cached);
        }
        done();
      },
      (err: { code?: number; message?: string }) => {
        clearTimeout(timer);
        delete cached.endpoints;
        if (err.code === 403) this.refuse(namespace);
        // Gone, or no longer readable: nothing to watch for, nor any change to read.
        if (err.code === 403 || err.code === 404) {
          this.unwatch(cached);
          cached.changedWhileReading = false;
        }
        this.options.log.debug({ service: key, err: err.message }, 'cannot read the endpoints of a Service');
        done();
      },
    );
  }

  /** Starts watching the slices of a Service just read, unless watched already or not allowed. */
  private watch(key: string, namespace: string, service: string, cached: Cached): void {
    const version = cached.endpoints?.version;
    const { watch } = this.options;
    if (!watch || !version || cached.stopWatch) return;
    if ((cached.watchAfter ?? 0) > Date.now() || this.isRefused(`watch ${namespace}`)) return;
    if (this.watched.size >= MAX_WATCHES) {
      const idlest = [...this.watched.values()].reduce((a, b) =>
        (a.usedAt ?? 0) <= (b.usedAt ?? 0) ? a : b,
      );
      if (Date.now() - (idlest.usedAt ?? 0) < WATCH_IDLE_MS) return; // all in use: this one polls
      this.unwatch(idlest);
    }
    const changed = () => {
      this.changes++;
      this.changed(key, namespace, service, cached);
    };
    let over = false;
    const began = Date.now();
    const ended = (why: WatchEnd) => {
      over = true;
      // A change still waiting to be read, or one that came meanwhile: not routed on.
      if (cached.changeRead || cached.changedWhileReading || cached.reading) cached.stale = true;
      this.unwatch(cached);
      // The next use reads again and watches from there; not at once after a watch that ended
      // soon after it began (a proxy, a stopping API server), which would be redone in a loop.
      cached.readAt = 0;
      if (Date.now() - began < SHORT_WATCH_MS) cached.watchAfter = Date.now() + WATCH_RETRY_MS;
      if (why?.statusCode === 403) remember(this.refused, `watch ${namespace}`, Date.now() + REFUSED_MS);
      if (why) this.options.log.debug({ service: key, err: why.message }, 'the watch of a Service ended');
    };
    const stop = watch(namespace, service, version, changed, ended);
    if (over) return; // ended before it began
    cached.stopWatch = stop;
    this.watched.set(key, cached);
  }

  /**
   * A watched Service changed: read again now, after the read running, or CHANGE_READ_GAP_MS
   * after the last one; a Service unused for IDLE_CHANGE_MS only at its next use.
   */
  private changed(key: string, namespace: string, service: string, cached: Cached): void {
    if (cached.reading) return void (cached.changedWhileReading = true);
    if (cached.changeRead) return;
    if (Date.now() - (cached.usedAt ?? 0) > IDLE_CHANGE_MS) return void (cached.stale = true);
    const wait = cached.readAt + CHANGE_READ_GAP_MS - Date.now();
    if (wait <= 0) return this.read(key, namespace, service, cached);
    cached.changeRead = setTimeout(() => {
      cached.changeRead = undefined;
      if (!this.closed && this.endpoints.get(key) === cached) this.changed(key, namespace, service, cached);
    }, wait).unref();
  }

  private unwatch(cached: Cached): void {
    clearTimeout(cached.changeRead);
    cached.changeRead = undefined;
    cached.stopWatch?.();
    cached.stopWatch = undefined;
    for (const [key, value] of this.watched) if (value === cached) this.watched.delete(key);
  }
}
