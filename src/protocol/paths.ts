// The requests the traffic manager serves over its HTTP/2 endpoint, and how they authenticate.

export const MANAGER_PATHS = {
  health: '/healthz',
  version: '/version',
  /** POST {@link SessionRequest}: opens (or resumes) a session; answers {@link SessionGrant}. */
  sessions: '/sessions',
  /** POST with the session token: ends the session now, undoing its intercepts. */
  sessionEnd: '/sessions/end',
  /** POST an RFC 8484 wire-format DNS query; the answer is the wire-format response. */
  dnsQuery: '/dns-query',
  /** GET with the session token: {@link ClusterInfo}, found with the manager's rights. */
  cluster: '/cluster',
  /** POST with the session token: renews the session's lease. */
  lease: '/lease',
  /** POST an InterceptRequest; answers InterceptInfo once the agent is ready. */
  intercepts: '/intercepts',
  /** POST {id}: the intercepted container's PodContext (env with secrets: never logged). */
  podContext: '/intercepts/context',
  /** POST {}: InterceptHealth[] of every intercept the manager holds for the session. */
  interceptHealth: '/intercepts/health',
  /** POST {id}: ends one intercept of the session. */
  leave: '/intercepts/leave',
  /** POST {@link RestoreDormantRequest}: restores now a workload this session left dormant; answers {restored}. */
  restore: '/intercepts/restore',
  /** GET: a long-lived stream of InboundEvent JSON lines for the session. */
  inboundEvents: '/inbound/events',
  /** POST {conn, reason}: the workstation could not take an inbound connection. */
  inboundRefused: '/inbound/refused',
  /** POST an AgentHello with the agent token: answers JSON lines of the agent's intercepted ports, on every change. */
  agentWatch: '/agent/watch',
} as const;

/** The developer API's port in the manager pod, on loopback: reached only through a port-forward. */
export const MANAGER_PORT = 8081;
/** The agent API's port: the manager Service's target, reached by agents in the cluster. */
export const AGENT_API_PORT = 8082;

/**
 * HTTP/2 settings of every telepod connection (daemon ↔ manager, agent ↔ manager): large
 * stream windows so one bulk transfer is not limited by round trips, and large frames so a
 * megabyte takes a handful of frames (and WebSocket messages) rather than sixty-four.
 */
export const HTTP2_SETTINGS = { initialWindowSize: 8 << 20, maxFrameSize: 256 << 10 } as const;
/** The connection-level receive window, set on each side once connected. */
export const HTTP2_CONNECTION_WINDOW = 64 << 20;

/**
 * Options of every telepod HTTP/2 session, both ends: the settings above, and a session memory
 * that answers queued for a slow reader do not reach. Node refuses new streams
 * (ENHANCE_YOUR_CALM) while a session's memory (its streams, header tables and data queued to
 * send) passes `maxSessionMemory` MB, 10 by default, and closes the session after 100 refusals:
 * 1,000 downloads at once through one tunnel lost streams, and then the whole tunnel. The limit
 * only decides whether a new stream is taken; what a stream buffers is bounded by its window.
 */
export const HTTP2_SESSION_OPTIONS = {
  settings: HTTP2_SETTINGS,
  maxSessionMemory: 4 * (HTTP2_CONNECTION_WINDOW >> 20),
} as const;

/** Every tunnel stream (CONNECT, DNS, requests) carries the session token in this header. */
export const SESSION_TOKEN_HEADER = 'x-telepod-session';

export const DNS_MESSAGE_TYPE = 'application/dns-message';

export interface SessionGrant {
  id: string;
  token: string;
  /** Seconds the session lives without being renewed. */
  leaseSeconds: number;
}

/** What a workstation routes to the cluster, and which DNS names are namespaces. */
export interface ClusterInfo {
  /** IPv4 CIDRs of Services and pods. */
  subnets: string[];
  namespaces: string[];
}

/** How the manager reports a refused request (HTTP 4xx/5xx with a JSON body). */
export interface ManagerError {
  error: string;
  exitCode: number;
}
