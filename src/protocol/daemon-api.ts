// The CLI ↔ daemon API: JSON over HTTP on a unix socket that only the daemon's user and the
// invoking user may open (root's daemon, or the user's own rootless one).
import { lstatSync } from 'node:fs';
import { posix } from 'node:path';
import type { InterceptInfo } from './intercept.ts';
import * as z from 'zod/mini';
import { usageError } from './errors.ts';
import { InterceptRequestSchema, kubeLabel, kubeName, uuid } from './requests.ts';

export const DEFAULT_DAEMON_DIR = '/run/telepod';
/** A unix socket's path has room for 107 bytes (sun_path, NUL-terminated). */
const MAX_SOCKET_PATH_BYTES = 107;

/**
 * The daemon's directory (socket, log, mounts.json, capture marker): `$TELEPOD_RUN_DIR`, default
 * /run/telepod (empty counts as unset), so that two daemons on one machine, one per network
 * namespace, keep apart. The CLI and the daemon both read it (sudo keeps it). Anything but an
 * absolute path without `..` is a usage error.
 */
export function daemonDir(env: NodeJS.ProcessEnv = process.env): string {
  const value = env.TELEPOD_RUN_DIR;
  if (value === undefined || value === '') return DEFAULT_DAEMON_DIR;
  if (!value.startsWith('/') || value.split('/').includes('..')) {
    throw usageError(`TELEPOD_RUN_DIR must be an absolute path without "..", not ${JSON.stringify(value)}`);
  }
  const dir = posix.normalize(value).replace(/(?<=.)\/$/, '');
  if (Buffer.byteLength(`${dir}/daemon.sock`) > MAX_SOCKET_PATH_BYTES) {
    throw usageError(`TELEPOD_RUN_DIR is too long for a unix socket path in it: ${JSON.stringify(value)}`);
  }
  return dir;
}
export const daemonSocket = (): string => `${daemonDir()}/daemon.sock`;
export const daemonLog = (): string => `${daemonDir()}/daemon.log`;
/** Exists while the daemon's capture rules are installed; left behind only by a crash. */
export const captureMarker = (): string => `${daemonDir()}/capture-installed`;
/** The daemon's record of its sshfs mounts, which the next daemon unmounts after a crash. */
export const mountsFile = (): string => `${daemonDir()}/mounts.json`;

/**
 * The daemon writes and deletes files in its directory, so only its owner may change what is
 * in it: a real directory (no symlink), owned by the daemon's user (root, or the user of a
 * rootless daemon), writable by nobody else. Otherwise a TELEPOD_RUN_DIR chosen by the user
 * (sudo keeps it) could make root write through the user's symlinks.
 */
export function checkDaemonDir(dir: string, owner = 0): void {
  const st = lstatSync(dir);
  const who = owner === 0 ? 'root' : `uid ${owner}`;
  let problem: string | undefined;
  if (st.isSymbolicLink()) problem = 'is a symbolic link';
  else if (!st.isDirectory()) problem = 'is not a directory';
  else if (st.uid !== owner) problem = `is not owned by ${who}`;
  else if (st.mode & 0o022) problem = `is writable by others than ${who}`;
  if (problem) throw usageError(`the telepod daemon's directory ${dir} ${problem} (TELEPOD_RUN_DIR)`);
}

/**
 * A rootless daemon's directory for the user `uid`: `$XDG_RUNTIME_DIR/telepod` when that runtime
 * directory is the user's own and no one else may write in it (su and sudo may pass on another
 * user's), else /tmp/telepod-<uid>;
 * `$TELEPOD_RUN_DIR` wins as for the root daemon.
 */
export function rootlessDaemonDir(uid: number, env: NodeJS.ProcessEnv = process.env): string {
  if (env.TELEPOD_RUN_DIR) return daemonDir(env);
  const runtime = env.XDG_RUNTIME_DIR;
  let owned: boolean;
  try {
    const st = runtime?.startsWith('/') ? lstatSync(runtime) : undefined;
    owned = !!st && st.isDirectory() && st.uid === uid && (st.mode & 0o022) === 0;
  } catch {
    owned = false; // missing
  }
  return daemonDir({ TELEPOD_RUN_DIR: owned ? `${runtime}/telepod` : `/tmp/telepod-${uid}` });
}

/** The levels of `--log-level`; the CLI passes an explicit one to the daemon it starts as `$TELEPOD_LOG_LEVEL`. */
export const LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;

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

const path = z.string().check(z.minLength(1), z.maxLength(4096));
const id = z.int().check(z.gte(0), z.lte(2 ** 31));
const cidr = z.string().check(z.regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, 'is not an IPv4 CIDR'));

/** A mount point the CLI checked (empty, writable) or made, and who is to own the files. */
export const MountRequestSchema = z.object({
  dir: path,
  /** The CLI made `dir`: it is removed again once unmounted. */
  created: z.boolean(),
  uid: id,
  gid: id,
});
export type MountRequest = z.infer<typeof MountRequestSchema>;

/** An intercept request as the CLI sends it: the namespace defaults to the session's. */
export const DaemonInterceptRequestSchema = z.extend(InterceptRequestSchema, {
  namespace: z.optional(kubeLabel),
  /** Where to mount the pod's volumes; absent: not mounted. */
  mount: z.optional(MountRequestSchema),
});
export type DaemonInterceptRequest = z.infer<typeof DaemonInterceptRequestSchema>;

/** Which intercept to end: by id, or by workload name (and namespace). */
export const LeaveRequestSchema = z.object({
  id: z.optional(uuid),
  name: z.optional(kubeName),
  namespace: z.optional(kubeLabel),
  /** Restore the workload now, instead of keeping its agent dormant for the next intercept. */
  restore: z.optional(z.boolean()),
});
export type LeaveRequest = z.infer<typeof LeaveRequestSchema>;

export const ConnectRequestSchema = z.object({
  /** The kubeconfig as the CLI loaded and merged it, as the user (JSON or YAML). */
  kubeconfig: z.string().check(z.minLength(1), z.maxLength(4 << 20)),
  /** The CLI's environment: exec credential plugins run with it, as the user (never logged). */
  env: z.record(
    z.string().check(z.regex(/^[^=\0]{1,1024}$/, 'is not an environment variable name')),
    z.string().check(z.maxLength(128 * 1024)),
  ),
  context: z.optional(z.string().check(z.maxLength(1024))),
  namespace: z.optional(kubeLabel),
  alsoProxy: z.array(cidr),
  neverProxy: z.array(cidr),
  managerNamespace: kubeLabel,
  image: z.string().check(z.minLength(1), z.maxLength(1024)),
  /** When connect installs the manager: for these namespaces only (`--namespaces`). */
  namespaces: z.optional(z.array(kubeLabel)),
});
export type ConnectRequest = z.infer<typeof ConnectRequestSchema>;

/** `/context` */
export const ContextRequestSchema = z.object({ id: uuid });
/** `/list` */
export const ListRequestSchema = z.object({ namespace: z.optional(kubeLabel) });

/** See {@link DaemonStatus.podConnections}. */
export interface PodConnectionCounts {
  direct: number;
  fallbacks: number;
  /** Services whose EndpointSlices the daemon watches now. */
  watchedServices: number;
  /** Changes of those slices seen so far (each read the Service's pods again). */
  endpointChanges: number;
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
  /** Whether the tunnel is up; while down, since when (ms since the epoch) and the last redial's error. */
  tunnel?: { up: boolean; downSince?: number; lastError?: string };
  /**
   * Connections sent straight to a Service's pod over a port-forward (not through the manager),
   * and how many of them went through the manager after all (the port-forward failed first).
   */
  podConnections?: PodConnectionCounts;
  dns?: { mode: string; clusterDomain: string };
  intercepts?: InterceptInfo[];
  /** Only in the answer to the connect that made the session: what the developer should know. */
  notices?: string[];
  /** A rootless daemon's: the holder of its network namespace (`nsenter -t <pid> --user --net`). */
  rootless?: { namespacePid: number };
}

/** How the daemon reports a failure; the CLI turns it back into a TelepodError. */
export interface DaemonError {
  error: string;
  exitCode: number;
}

/**
 * A CLI that shows progress asks for it with this `accept` type: the daemon then answers 200 at
 * once and sends one JSON document per line — {@link DaemonProgressLine}s, then the outcome.
 */
export const PROGRESS_MEDIA_TYPE = 'application/x-ndjson';

/** Hears that a step of a long call begins (e.g. "waiting for the traffic manager pod to be ready"). */
export type ProgressStep = (step: string) => void;

/** One line of a progress answer: a step begun, then exactly one `result` or `failure`. */
export type DaemonProgressLine = { step: string } | { result: unknown } | { failure: DaemonError };
