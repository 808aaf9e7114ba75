// What crosses between CLI, daemon, manager and agent about intercepts: the request a developer
// makes, what the manager reports back, the agent's configuration, and the headers and
// annotations that tie streams and cluster objects to sessions.
import * as z from 'zod/mini';

/** intercept: a sidecar agent takes some ports over; replace: the agent replaces the app
 *  container; swap: a proxy Deployment stands in for a scaled-down one; expose: a new proxy
 *  Deployment + Service named after the session. */
export const INTERCEPT_MODES = ['intercept', 'replace', 'swap', 'expose'] as const;
export type InterceptMode = (typeof INTERCEPT_MODES)[number];

export interface InterceptedPort {
  local: number;
  /** e.g. `service-b:8000/http`, or the container port for swap/expose. */
  remote: string;
  /** The port the agent listens on in the pod. */
  agentPort: number;
}

/**
 * Which requests of a port a personal intercept takes (all conditions must hold): a header's
 * exact value (names in lower case), a path prefix, a method. See {@link routeOrder}.
 */
export interface RequestFilter {
  headers: { name: string; value: string }[];
  pathPrefix?: string;
  method?: string;
}

/**
 * One intercept on a port whose requests the agent routes one by one (HTTP/1.1, HTTP/2 streams,
 * upgrades): matching requests go to the intercept's workstation, or, for a mirror, a copy does
 * while the app answers. A port with no routes but intercepted whole goes to one workstation.
 */
export interface PortRoute {
  /** The intercept's id: the agent's stream for a routed request names it. */
  intercept: string;
  /** Absent: every request (only a mirror may take every request while others filter). */
  filter?: RequestFilter;
  mirror: boolean;
}

/**
 * The order in which routes are tried: the filter with more headers first, then the longer
 * path prefix, then one with a method, then the older intercept; the first match takes the
 * request. Headers come first because they are what names a developer: a path or a method
 * alone is shared by everyone's requests.
 */
export function specificity(filter: RequestFilter | undefined): [number, number, number] {
  if (!filter) return [0, 0, 0];
  return [filter.headers.length, filter.pathPrefix?.length ?? 0, filter.method ? 1 : 0];
}

/** A filter as people read it: `x-dev=alice, path /api, GET`. */
export function describeFilter(filter: RequestFilter): string {
  return [
    ...filter.headers.map((h) => `${h.name}=${h.value}`),
    ...(filter.pathPrefix ? [`path ${filter.pathPrefix}`] : []),
    ...(filter.method ? [filter.method] : []),
  ].join(', ');
}

/** Sorts routes (given oldest first) into the order the agent tries them. */
export function routeOrder<T extends { filter?: RequestFilter | undefined }>(routes: T[]): T[] {
  return routes
    .map((route, age) => ({ route, age, rank: specificity(route.filter) }))
    .sort((a, b) => b.rank[0] - a.rank[0] || b.rank[1] - a.rank[1] || b.rank[2] - a.rank[2] || a.age - b.age)
    .map(({ route }) => route);
}

export interface InterceptInfo {
  id: string;
  mode: InterceptMode;
  namespace: string;
  workload: string;
  kind: string;
  ports: InterceptedPort[];
  /** Who holds it: `user@host` of the session. */
  holder: string;
  /** A personal intercept: only the requests that match go to the workstation. */
  filter?: RequestFilter;
  /** The workstation receives a copy of each (matching) request; the app answers. */
  mirror?: boolean;
  /** Seconds from the request to the agent being ready. */
  readySeconds?: number;
  /** Set by the daemon: the last problem delivering a connection to the workstation. */
  warning?: string;
  /** Set by the daemon for `status`: whether cluster traffic reaches the workstation now, and if not, why. */
  effective?: boolean;
  problem?: string;
  /** Set by the daemon: where the pod's volumes are mounted, or why they are not. */
  volumes?: { root?: string; warning?: string };
  /**
   * In a leave's answer, when the workload keeps its agent, dormant: the seconds without an
   * intercept after which it is restored (the install's `--agent-idle`).
   */
  dormantSeconds?: number;
}

/** What the workstation receives of the pod behind an intercept, besides its traffic. */
export interface PodContext {
  /** The app container's environment (secrets included: never logged or shown). */
  env: Record<string, string>;
  /** The app container's volume mount paths (what `TELEPOD_MOUNTS` lists). */
  mounts: string[];
}

/** How one intercept of a session is doing at the manager (POST /intercepts/health). */
export interface InterceptHealth {
  id: string;
  /** Agents of the workload connected to the manager now. */
  agents: number;
  /** Why the intercept is not effective, when it is not. */
  problem?: string;
}

/** One intercept of a workload as others see it (`telepod list`). */
export interface InterceptHolder {
  mode: InterceptMode;
  holder: string;
  /** e.g. `x-dev=alice, path /api, GET`; absent for a whole-port intercept. */
  filter?: string;
  mirror?: boolean;
  /** `service:port/name -> localhost:local` */
  ports: string[];
}

export interface WorkloadInfo {
  kind: string;
  name: string;
  namespace: string;
  services: { name: string; ports: { name?: string; port: number; targetPort: string }[] }[];
  intercepts: InterceptHolder[];
  /** No intercept holds it, but its agent stays (dormant) for the next one. */
  dormantAgent?: boolean;
}

/** Annotation on an intercepted workload: JSON {@link InterceptHolder}[], kept by the manager. */
export const INTERCEPTS_ANNOTATION = 'telepod.io/intercepts';

/** One port of an agent: where it listens, and where traffic goes when it is not intercepted. */
export interface AgentPort {
  listen: number;
  /** The app's own port in the same pod; absent when the agent replaces the app. */
  forward?: number;
}

/** The agent's configuration, passed as JSON in {@link AGENT_CONFIG_ENV}. */
export interface AgentConfig {
  manager: string;
  /** The injection this agent belongs to (not a secret: the agent proves itself with its pod's token). */
  injection: string;
  ports: AgentPort[];
  /** A port never intercepted, for the kubelet's readiness probe; open once registered. */
  health: number;
}

/** The agent's container name in a workload's pods. */
export const AGENT_CONTAINER = 'telepod-agent';
export const AGENT_CONFIG_ENV = 'TELEPOD_AGENT_CONFIG';

/**
 * A line on an agent's watch stream: the ports now intercepted whole and those whose requests
 * it routes one by one (agent port → routes in the order to try), or a request to serve the
 * volume `mounts` over SFTP on a new stream paired by `sftp`.
 */
export type AgentMessage =
  { intercepted: number[]; routes?: Record<string, PortRoute[]> } | { sftp: string; mounts: string[] };

/**
 * Variables an agent does not report: the image's and the shell's own (the node image sets
 * PATH, HOME, NODE_VERSION, YARN_VERSION), which would override the workstation's, and the
 * agent's configuration.
 */
export const UNREPORTED_ENV = new Set([
  'PATH',
  'HOME',
  'HOSTNAME',
  'TERM',
  'SHELL',
  'USER',
  'PWD',
  'SHLVL',
  'NODE_VERSION',
  'YARN_VERSION',
  AGENT_CONFIG_ENV,
]);
/** Agent streams to the manager name the agent's injection in this header... */
export const AGENT_INJECTION_HEADER = 'x-telepod-injection';
/** ...and carry its pod's projected service-account token for this audience as `authorization: Bearer`. */
export const AGENT_AUDIENCE = 'telepod-agent';
/** Where the agent container finds that token (a projected volume the kubelet rotates). */
export const AGENT_TOKEN_DIR = '/var/run/secrets/telepod-agent';
/** The agent port an inbound connection arrived on. */
export const AGENT_PORT_HEADER = 'x-telepod-port';
/** An agent's stream for a routed request (or its mirror copy) names the intercept it is for. */
export const ROUTED_INTERCEPT_HEADER = 'x-telepod-intercept';
/** The daemon's CONNECT for an inbound connection names it with this header. */
export const INBOUND_HEADER = 'x-telepod-inbound';
/** A volume (SFTP) stream: the daemon's CONNECT names the intercept, the agent's the pairing. */
export const VOLUMES_HEADER = 'x-telepod-volumes';

/** A line on the daemon's inbound event stream: a cluster connection waits for the workstation. */
export interface InboundEvent {
  conn: string;
  intercept: string;
  local: number;
}

const InboundEventSchema = z.object({
  conn: z.string().check(z.maxLength(200)),
  intercept: z.string().check(z.maxLength(200)),
  local: z.number().check(z.int(), z.minimum(1), z.maximum(65535)),
});

/** One line of the inbound event stream as an event; undefined for anything else. */
export function parseInboundEvent(line: string): InboundEvent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  const result = z.safeParse(InboundEventSchema, value);
  return result.success ? result.data : undefined;
}

/** Annotation on a changed workload: what to restore (JSON written and read by the manager). */
export const UNDO_ANNOTATION = 'telepod.io/undo';
/** Beside it: the manager's HMAC of the record, so that a record anyone else wrote is ignored. */
export const UNDO_MAC_ANNOTATION = 'telepod.io/undo-mac';
/** The label on every object telepod creates; only such objects are ever deleted on restore. */
export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'telepod' } as const;
/** Label on objects telepod created for a session (proxy Deployments and Services). */
export const SESSION_LABEL = 'telepod.io/session';

/**
 * How long a workload keeps its agent, passing every request to the app, after its last
 * intercept ended without `--restore`: a re-intercept within this time needs no rollout. The end
 * of the session that left it (quit, or its lease after a crash) restores it at once.
 */
export const DORMANT_AGENT_MINUTES = 15;
/**
 * The manager's environment variable for that time in seconds, when the install sets one
 * (`telepod install --agent-idle`); 0 restores a workload as soon as its last intercept ends.
 */
export const AGENT_IDLE_ENV = 'TELEPOD_AGENT_IDLE_SECONDS';
/** The longest idle time an install may set: a day. */
export const MAX_AGENT_IDLE_SECONDS = 24 * 3600;
