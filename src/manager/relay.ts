// Relays: a cold intercept is a rollout, and its new pods (with the agent) take seconds to be
// ready. Meanwhile the manager itself takes the intercepted Service ports' new connections:
// a listener per port, which a relay EndpointSlice (bridge-slices.ts) puts in the Service, and
// each accepted connection goes to the workstation as an agent's would (inbound.ts). So the
// first request reaches the workstation one kube-proxy sync after the request, not after the
// rollout. Only for whole-port intercepts of numeric targetPorts (the ports that move), and
// only when the daemon said it serves connections before the manager's answer.
import net from 'node:net';
import type { InterceptRequest } from '../protocol/requests.ts';
import type { Injection } from './injection-registry.ts';
import { isRouted } from './port-sharing.ts';
import type { ResolvedPort, Service, ServicePort } from './workloads.ts';

/** Where a relayed connection goes: one local port of a session's intercept. */
export interface RelayRoute {
  sessionId: string;
  interceptId: string;
  local: number;
}

/** Takes a connection a relay accepted (Inbound.relayConnect). */
export type RelayHandler = (socket: net.Socket, route: RelayRoute) => void;

/**
 * How long a relay still accepts after its slice is deleted: kube-proxy on each node follows
 * the EndpointSlice change a moment later (at most its 1 s minSyncPeriod after the sync before).
 */
export const RELAY_LINGER_MS = 5000;
/** Connections one relay holds at most at once; more are closed as they come. */
const MAX_RELAYED = 4096;

/** What relays need of the manager: its pod's address, where connections go, its log. */
export interface RelaySettings {
  /** The manager pod's IP: the relays listen on it, and the relay slices name it. */
  address: string | undefined;
  handler: RelayHandler;
  log: (message: string) => void;
}

/** One rollout's relay listeners, all on the manager pod's own address. */
export class Relays {
  private readonly servers: net.Server[] = [];

  constructor(
    readonly address: string,
    private readonly settings: Pick<RelaySettings, 'handler' | 'log'>,
  ) {}

  /**
   * Opens a listener whose connections go to `route`; resolves to its port, or to undefined
   * (logged) when it cannot listen: that port is then bridged to the old pods as before.
   */
  async open(route: RelayRoute): Promise<number | undefined> {
    const server = net.createServer({ noDelay: true, allowHalfOpen: true }, (socket) =>
      this.settings.handler(socket, route),
    );
    server.maxConnections = MAX_RELAYED;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ host: this.address, port: 0 }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      this.settings.log(`cannot relay on ${this.address}: ${(err as Error).message}`);
      return undefined;
    }
    server.on('error', (err) => this.settings.log(`relay on ${this.address}: ${err.message}`));
    this.servers.push(server);
    return (server.address() as net.AddressInfo).port;
  }

  /**
   * Stops accepting after `lingerMs` (connections already relayed go on); 0 stops at once.
   * Resolves once every connection the relays took has closed.
   */
  close(lingerMs: number): Promise<void> {
    const servers = this.servers.splice(0);
    const closed = servers.map((s) => new Promise<void>((resolve) => s.once('close', () => resolve())));
    const stop = () => servers.forEach((s) => s.close());
    if (lingerMs > 0) setTimeout(stop, lingerMs).unref();
    else stop();
    return Promise.all(closed).then(() => undefined);
  }
}

/** A cold whole-port intercept's relays: where each asked-for Service port's connections go meanwhile. */
export interface RelayPlan {
  relays: Relays;
  ports: { service: string; port: ServicePort; route: RelayRoute }[];
  /** Called with the injection as its rollout starts: the intercept holds its ports from then on. */
  start?: (injection: Injection) => void;
}

/**
 * Whether a Service's connections may go to the manager's pod: not a headless one (its clients
 * dial pod addresses from DNS at the Service's own port) nor one whose traffic policy is Local
 * (kube-proxy would use only endpoints on the client's node, and the relay slice names none).
 */
function relayable(service: Service): boolean {
  const { clusterIP, internalTrafficPolicy, externalTrafficPolicy } = service.spec;
  return clusterIP !== 'None' && internalTrafficPolicy !== 'Local' && externalTrafficPolicy !== 'Local';
}

/**
 * The relays of intercept `interceptId`'s cold rollout, for the Service ports `resolved`;
 * undefined when nothing may be relayed: no address of the manager's pod, a daemon that does
 * not serve connections before the answer, or a personal intercept or mirror (the agents
 * choose per request).
 */
export function relayPlan(
  { address, ...settings }: RelaySettings,
  request: InterceptRequest,
  sessionId: string,
  interceptId: string,
  resolved: ResolvedPort[],
): RelayPlan | undefined {
  if (!address || !request.earlyInbound || isRouted(request)) return undefined;
  return {
    relays: new Relays(address, settings),
    ports: resolved
      .filter((r) => relayable(r.service))
      .map((r) => ({
        service: r.service.metadata!.name!,
        port: r.servicePort,
        route: { sessionId, interceptId, local: r.local },
      })),
  };
}
