// How intercepts share a port of one workload: a whole-port intercept takes every connection
// and shares with no one; personal intercepts (an HTTP filter) and mirrors share a port with
// each other, and the agent routes each request by the order in `routeOrder`. Pure functions
// over the intercepts the manager holds: the conflict rules, the message that tells agents
// where requests go, and which Service ports can be routed at all.
import {
  describeFilter,
  routeOrder,
  type AgentMessage,
  type InterceptInfo,
  type PortRoute,
  type RequestFilter,
} from '../protocol/intercept.ts';
import { TelepodError, usageError } from '../protocol/errors.ts';
import type { InterceptRequest } from '../protocol/requests.ts';
import { Forbidden } from './claims.ts';
import type { InterceptedPort } from '../protocol/intercept.ts';
import type { Injection } from './injection-registry.ts';
import type { ResolvedPort, ServicePort, Workload } from './workloads.ts';

/** An intercept as the manager holds it: what it is, and the session it belongs to. */
export interface PortHolder {
  info: InterceptInfo;
  sessionId: string;
}

/** What a new intercept asks of a port. */
export interface Wanted {
  filter?: RequestFilter | undefined;
  mirror?: boolean | undefined;
}

/**
 * A filter in its one canonical form: a header condition given twice counts once, and a path
 * prefix `/` (which every path has) is no condition. Rules and ranks are applied to this form,
 * so that restating someone's filter is the same filter, not a more specific one.
 */
export function normalizedFilter(filter: RequestFilter): RequestFilter {
  const seen = new Set<string>();
  const headers = filter.headers.filter((h) => {
    const key = `${h.name}\n${h.value}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
  return {
    headers,
    ...(filter.pathPrefix && filter.pathPrefix !== '/' ? { pathPrefix: filter.pathPrefix } : {}),
    ...(filter.method ? { method: filter.method } : {}),
  };
}

/** Whether a filter takes every request (no header, no method, no path narrower than `/`). */
export function matchesEverything(filter: RequestFilter): boolean {
  const { headers, method, pathPrefix } = normalizedFilter(filter);
  return !headers.length && !method && !pathPrefix;
}

/** Whether an intercept takes requests one by one (a filter or a mirror), not the whole port. */
export function isRouted(wanted: Wanted): boolean {
  return wanted.filter !== undefined || wanted.mirror === true;
}

function label(holder: PortHolder): string {
  const { filter, mirror } = holder.info;
  const what = [filter ? describeFilter(filter) : '', mirror ? 'mirror' : ''].filter(Boolean).join(', ');
  return what ? `${holder.info.holder} (${what})` : holder.info.holder;
}

function sameFilter(a: RequestFilter | undefined, b: RequestFilter | undefined): boolean {
  const key = (f: RequestFilter | undefined) =>
    f &&
    JSON.stringify([[...f.headers].sort((x, y) => x.name.localeCompare(y.name)), f.pathPrefix, f.method]);
  return key(a) === key(b);
}

/**
 * Why `wanted` cannot share a port with `holders` (the intercepts already on it), or undefined.
 * `port` describes the port for the message, e.g. `service-b:8000/http of Deployment service-b`.
 */
export function portConflict(
  holders: PortHolder[],
  wanted: Wanted,
  sessionId: string,
  port: string,
): string | undefined {
  if (!holders.length) return undefined;
  const names = holders.map(label).join(', ');
  const whole = holders.find((h) => !isRouted(h.info));
  if (whole) return `port ${port} is already intercepted by ${label(whole)}`;
  if (!isRouted(wanted)) {
    return (
      `port ${port} has personal intercepts or mirrors of ${names}: an intercept of every request would ` +
      'take theirs too; intercept with --http-header (or --mirror) instead'
    );
  }
  const own = holders.find((h) => h.sessionId === sessionId);
  if (own) return `port ${port} is already intercepted by this session (${label(own)}); leave it first`;
  const twin = holders.find(
    (h) => !h.info.mirror && !wanted.mirror && sameFilter(h.info.filter, wanted.filter),
  );
  if (twin) return `port ${port} is already intercepted with the same filter by ${label(twin)}`;
  return undefined;
}

/**
 * What a workload's agents are told: the ports intercepted whole (new connections go to the
 * workstation as they are) and, for every intercepted port, the routes in the order to try
 * (connections the agent routes per request follow them; a whole-port intercept is one route
 * that matches everything).
 */
export function agentMessage(holders: PortHolder[]): Extract<AgentMessage, { intercepted: number[] }> {
  const intercepted = new Set<number>();
  const byPort = new Map<number, PortRoute[]>();
  for (const { info } of holders) {
    for (const { agentPort } of info.ports) {
      if (!isRouted(info)) intercepted.add(agentPort);
      const route: PortRoute = {
        intercept: info.id,
        mirror: info.mirror === true,
        ...(info.filter ? { filter: info.filter } : {}),
      };
      byPort.set(agentPort, [...(byPort.get(agentPort) ?? []), route]);
    }
  }
  const routes = Object.fromEntries([...byPort].map(([port, list]) => [String(port), routeOrder(list)]));
  return { intercepted: [...intercepted], routes };
}

/** Port name prefixes (Istio's convention) and appProtocols that say a port is not plain HTTP. */
const NOT_HTTP = [
  'https',
  'tls',
  'tcp',
  'mongo',
  'mysql',
  'redis',
  'postgres',
  'amqp',
  'kafka',
  'udp',
  'wss',
];
const HTTP_APP_PROTOCOLS = ['http', 'http2', 'h2c', 'grpc', 'kubernetes.io/h2c', 'kubernetes.io/ws'];

/**
 * Why a Service port cannot carry a personal intercept or mirror (its appProtocol or name says
 * it is TLS or not HTTP, so the agent could not read its requests), or undefined.
 */
export function notHttpReason(port: ServicePort): string | undefined {
  const declared = port.appProtocol?.toLowerCase();
  if (declared !== undefined) {
    return HTTP_APP_PROTOCOLS.includes(declared)
      ? undefined
      : `its appProtocol is ${port.appProtocol}, and only plain HTTP/1.1, h2c and gRPC requests can be told apart`;
  }
  const prefix = port.name?.toLowerCase().split('-')[0];
  if (prefix && NOT_HTTP.includes(prefix)) {
    return `its name ${port.name} says it carries ${prefix}, and only plain HTTP/1.1, h2c and gRPC requests can be told apart`;
  }
  return undefined;
}

/** Refused because another intercept holds what was asked for (HTTP 409). */
export class ConflictError extends TelepodError {
  readonly status = 409;
}

/** A Service port as messages name it: `service:port/name`. */
export function describePort(r: ResolvedPort): string {
  const name = r.servicePort.name ? `/${r.servicePort.name}` : '';
  return `${r.service.metadata?.name}:${r.servicePort.port}${name}`;
}

/**
 * The port an intercept of `r` gets of the injection's agent, checked against the intercepts
 * that hold it already; throws ConflictError when they may not share it.
 */
export function claimPort(
  injection: Injection,
  workload: Workload,
  r: ResolvedPort,
  wanted: Wanted,
  sessionId: string,
): InterceptedPort {
  const agentPort = injection.agentPorts.find((p) => p.forward === r.containerPort)?.listen;
  if (agentPort === undefined) {
    throw new TelepodError(
      `the agent of ${injection.name} does not serve port ${r.containerPort} (the Services changed): ` +
        'leave every intercept of it and intercept again',
    );
  }
  const holders = [...injection.intercepts.values()].filter((a) =>
    a.info.ports.some((p) => p.agentPort === agentPort),
  );
  const conflict = portConflict(
    holders,
    wanted,
    sessionId,
    `${describePort(r)} of ${workload.kind} ${injection.name}`,
  );
  if (conflict) throw new ConflictError(conflict);
  return { local: r.local, remote: describePort(r), agentPort };
}

/**
 * `request` as the manager acts on it (its filter normalized), before anything is read from the
 * cluster: a usage error for what cannot be asked, Forbidden outside the install's `namespaces`.
 */
export function checkedRequest(
  request: InterceptRequest,
  namespaces: string[] | undefined,
): InterceptRequest {
  if (!request.ports.length && (request.mode === 'intercept' || request.mode === 'replace'))
    throw usageError('give at least one port with --port');
  if (isRouted(request) && request.mode !== 'intercept')
    throw usageError('only an intercept can filter requests (--http-*) or mirror them');
  if (request.filter) request = { ...request, filter: normalizedFilter(request.filter) };
  if (request.filter && !request.mirror && matchesEverything(request.filter))
    throw usageError('this filter matches every request: intercept without --http-* to take the whole port');
  if (namespaces && !namespaces.includes(request.namespace)) {
    throw new Forbidden(
      `the traffic manager is installed for namespaces ${namespaces.join(', ')} only, not ${request.namespace} ` +
        `(a cluster admin can add it: telepod install --namespaces ${[...namespaces, request.namespace].join(',')})`,
    );
  }
  return request;
}
