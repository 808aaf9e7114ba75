// The requests the traffic manager serves over its HTTP/2 endpoint, and how they authenticate.

export const MANAGER_PATHS = {
  health: '/healthz',
  version: '/version',
  /** POST: opens a session; answers {@link SessionGrant}. */
  sessions: '/sessions',
  /** POST an RFC 8484 wire-format DNS query; the answer is the wire-format response. */
  dnsQuery: '/dns-query',
  /** POST with the session token: renews the session's lease. */
  lease: '/lease',
} as const;

/** The port the traffic manager listens on inside its pod. */
export const MANAGER_PORT = 8081;

/** Every tunnel stream (CONNECT, DNS) carries the session token in this header. */
export const SESSION_TOKEN_HEADER = 'x-telepod-session';

export const DNS_MESSAGE_TYPE = 'application/dns-message';

export interface SessionGrant {
  id: string;
  token: string;
  /** Seconds the session lives without being renewed. */
  leaseSeconds: number;
}
