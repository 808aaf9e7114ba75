// The request paths the traffic manager serves over its HTTP/2 endpoint.

export const MANAGER_PATHS = {
  health: '/healthz',
  version: '/version',
} as const;

/** The port the traffic manager listens on inside its pod. */
export const MANAGER_PORT = 8081;
