// The CLI ↔ root daemon API: JSON over HTTP on a unix socket that only root and the invoking
// user may open.
import type { InterceptInfo } from './intercept.ts';
import type { InterceptRequest } from './requests.ts';

export const DAEMON_DIR = '/run/telepod';
export const DAEMON_SOCKET = `${DAEMON_DIR}/daemon.sock`;
export const DAEMON_LOG = `${DAEMON_DIR}/daemon.log`;
/** Exists while the daemon's capture rules are installed; left behind only by a crash. */
export const CAPTURE_MARKER = `${DAEMON_DIR}/capture-installed`;

export const DAEMON_PATHS = {
  connect: '/connect',
  status: '/status',
  quit: '/quit',
  /** {@link DaemonInterceptRequest} → InterceptInfo */
  intercept: '/intercept',
  /** {@link LeaveRequest} → InterceptInfo of the ended intercept */
  leave: '/leave',
  /** {namespace?} → WorkloadInfo[] */
  list: '/list',
  /** {id} → the intercepted container's PodContext (secrets: never logged or shown in status) */
  context: '/context',
} as const;

/** An intercept request as the CLI sends it: the namespace defaults to the session's. */
export type DaemonInterceptRequest = Omit<InterceptRequest, 'namespace'> & {
  namespace?: string | undefined;
  /** Where to mount the pod's volumes; absent: not mounted. */
  mount?: MountRequest | undefined;
};

/** A mount point the CLI checked (empty, writable) or made, and who is to own the files. */
export interface MountRequest {
  dir: string;
  /** The CLI made `dir`: it is removed again once unmounted. */
  created: boolean;
  uid: number;
  gid: number;
}

/** Which intercept to end: by id, or by workload name (and namespace). */
export interface LeaveRequest {
  id?: string;
  name?: string;
  namespace?: string | undefined;
}

export interface ConnectRequest {
  kubeconfig?: string | undefined;
  context?: string | undefined;
  namespace?: string | undefined;
  alsoProxy: string[];
  neverProxy: string[];
  managerNamespace: string;
  image: string;
  /** When connect installs the manager: for these namespaces only (`--namespaces`). */
  namespaces?: string[] | undefined;
}

export interface DaemonStatus {
  connected: boolean;
  daemonPid: number;
  context?: string;
  namespace?: string;
  managerNamespace?: string;
  managerVersion?: string;
  subnets?: string[];
  /** How often the tunnel to the manager was re-established. */
  reconnects?: number;
  dns?: { mode: string; clusterDomain: string };
  intercepts?: InterceptInfo[];
}

/** How the daemon reports a failure; the CLI turns it back into a TelepodError. */
export interface DaemonError {
  error: string;
  exitCode: number;
}
