// The CLI's side of the daemon API: calls over the unix socket, and starting the root daemon
// when none runs (through sudo when the user is not root, as Telepresence does). The daemon's
// directory is $TELEPOD_RUN_DIR (default /run/telepod); a bad value is a usage error here.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import {
  captureMarker,
  checkDaemonDir,
  daemonDir,
  daemonLog,
  DAEMON_PATHS,
  daemonSocket,
  PROGRESS_MEDIA_TYPE,
  rootlessDaemonDir,
  type DaemonError,
  type DaemonProgressLine,
  type DaemonStatus,
} from '../protocol/daemon-api.ts';
import { TelepodError } from '../protocol/errors.ts';
import { LEAN_NODE_FLAGS } from '../protocol/node-flags.ts';
import type { Progress } from './progress.ts';
import { userNamespaceBlocker } from './user-namespaces.ts';

/** Whether this command talks to (and starts) the user's rootless daemon rather than root's. */
let rootless = false;
/** $TELEPOD_RUN_DIR as the user set it, before `useRootlessDaemon` pointed it at their daemon. */
let userRunDir: string | undefined;

/**
 * Makes this command use a rootless daemon: the user's own, in the user's own directory
 * (protocol/daemon-api.ts `rootlessDaemonDir`), started without sudo. To start one (`start`),
 * first makes sure user namespaces can be made, so that a machine without them fails before
 * anything changed; `status` and `quit` only need to find it. Either way the directory must be
 * the user's alone before its socket is used: /tmp is shared, and a directory someone else made
 * there would let them pose as the daemon (and be sent the kubeconfig).
 */
export function useRootlessDaemon({ start = true } = {}): void {
  const blocker = start ? userNamespaceBlocker() : undefined;
  if (blocker) {
    throw new TelepodError(
      `rootless mode needs unprivileged user namespaces, and this machine does not allow them: ` +
        `${blocker.detail}. To allow them (as root): ${blocker.fix}; or run telepod without --rootless`,
    );
  }
  const uid = process.getuid?.() ?? 0;
  const dir = rootlessDaemonDir(uid);
  if (start) mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (existsSync(dir)) checkDaemonDir(dir, uid);
  rootless = true;
  userRunDir = process.env.TELEPOD_RUN_DIR;
  process.env.TELEPOD_RUN_DIR = dir;
}

/**
 * The environment for the user's command: this process's, with $TELEPOD_RUN_DIR as the user
 * set it — so that a `telepod` inside a rootless run talks to the daemon it would talk to
 * anywhere else (root's), not to the one the run set up.
 */
export function commandEnvironment(): NodeJS.ProcessEnv {
  if (!rootless) return process.env;
  const env = { ...process.env };
  if (userRunDir === undefined) delete env.TELEPOD_RUN_DIR;
  else env.TELEPOD_RUN_DIR = userRunDir;
  return env;
}

/** A rootless session's namespace, for running the user's command in it; an error when it has none. */
export function rootlessNamespace(status: DaemonStatus): number {
  if (!status.rootless) {
    throw new TelepodError(
      `the daemon in ${daemonDir()} is not a rootless one: not running the command outside a namespace`,
    );
  }
  return status.rootless.namespacePid;
}

/** Parses what the daemon sent; a daemon that sends something else is a clear error, not a crash. */
function parseAnswer<T>(text: string): T {
  try {
    return JSON.parse(text || '{}') as T;
  } catch {
    throw new TelepodError(`the telepod daemon answered something that is not JSON (see ${daemonLog()})`);
  }
}

/**
 * A POST of `path` to the daemon on a connection of its own. Made by `createConnection` rather
 * than an HTTP agent: an agent's first request names its host with `net.isIP`, whose first use
 * compiles Node's IPv6 regular expression (17.5 ms of self time in a CPU profile of a
 * re-intercept's CLI, 13 ms of one request's time on the testbed; README, Performance).
 */
function daemonRequest(path: string, headers: http.OutgoingHttpHeaders = {}): http.RequestOptions {
  const socket = daemonSocket();
  // defaultPort: the Host header stays `localhost`, as an agent's default port made it.
  return { createConnection: () => net.connect(socket), defaultPort: 80, path, method: 'POST', headers };
}

/** Calls the daemon; it answers the value or a DaemonError, thrown here as a TelepodError. */
export async function callDaemon<T>(path: string, body?: unknown): Promise<T> {
  const options = daemonRequest(path);
  return new Promise((resolve, reject) => {
    const req = http.request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          const value = parseAnswer<T | DaemonError>(Buffer.concat(chunks).toString());
          if (res.statusCode === 200) resolve(value as T);
          else reject(new TelepodError((value as DaemonError).error, (value as DaemonError).exitCode));
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** A line of a progress answer longer than this is not one the daemon writes. */
const MAX_PROGRESS_LINE = 1 << 20;

/**
 * Calls the daemon for a long operation, showing its steps on `progress` as they begin; the
 * last step ends as done or failed with the call. A daemon that answers plainly (an older one,
 * or a refusal before the call began) is understood too.
 */
export async function callDaemonWithProgress<T>(path: string, body: unknown, progress: Progress): Promise<T> {
  const outcome = await new Promise<DaemonProgressLine>((resolve, reject) => {
    const stopped = () => new TelepodError(`the telepod daemon stopped during the call (see ${daemonLog()})`);
    let sent = false; // after the request went out, a broken socket means the daemon stopped
    const req = http.request(daemonRequest(path, { accept: PROGRESS_MEDIA_TYPE }), (res) => {
      const fail = (err: Error) => {
        req.destroy();
        reject(err);
      };
      res.on('error', () => fail(stopped()));
      res.on('close', () => {
        if (!res.complete) fail(stopped());
      });
      let pending = '';
      let last: DaemonProgressLine | undefined;
      const streamed = res.headers['content-type'] === PROGRESS_MEDIA_TYPE;
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        if (!streamed) return void (pending += text);
        const lines = (pending + text).split('\n');
        pending = lines.pop()!;
        try {
          if (pending.length > MAX_PROGRESS_LINE)
            throw new TelepodError('the telepod daemon sent an overlong line');
          for (const line of lines.filter(Boolean)) {
            last = parseAnswer<DaemonProgressLine>(line);
            if ('step' in last) progress.step(last.step);
          }
        } catch (err) {
          fail(err as Error);
        }
      });
      res.on('end', () => {
        try {
          if (!streamed) {
            const value = parseAnswer<unknown>(pending);
            return resolve(res.statusCode === 200 ? { result: value } : { failure: value as DaemonError });
          }
          if (last && !('step' in last)) resolve(last);
          else reject(new TelepodError('the telepod daemon ended the call without an answer'));
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
    req.on('finish', () => (sent = true));
    req.on('error', (err: Error) => reject(sent ? stopped() : err));
    req.end(JSON.stringify(body));
  }).catch((err: unknown) => {
    progress.end(false);
    throw err;
  });
  progress.end(!('failure' in outcome));
  if ('failure' in outcome) throw new TelepodError(outcome.failure.error, outcome.failure.exitCode);
  return (outcome as { result: T }).result;
}

export async function daemonRunning(): Promise<boolean> {
  daemonDir(); // a bad TELEPOD_RUN_DIR is the user's error, not "no daemon"
  return callDaemon(DAEMON_PATHS.status).then(
    () => true,
    () => false,
  );
}

/**
 * Starts the daemon unless one runs — root's (through sudo when not root), or after
 * `useRootlessDaemon` the user's own — reporting it as a step.
 */
export async function ensureDaemon(progress?: Progress): Promise<void> {
  if (await daemonRunning()) return;
  const dir = daemonDir();
  const command = [
    process.execPath,
    ...LEAN_NODE_FLAGS, // the daemon sets its other V8 flags itself (RUNTIME_V8_FLAGS, keepMemoryLean)
    process.argv[1]!,
    'daemon',
    ...(rootless ? ['--rootless'] : []),
  ];
  const uid = process.getuid?.() ?? 0;
  const asItself = rootless || uid === 0; // no sudo: root, or the user's rootless daemon
  if (asItself) mkdirSync(dir, { recursive: true, mode: rootless ? 0o700 : 0o755 });
  // The daemon refuses a directory that is not its user's alone: say why here, where it is seen.
  if (existsSync(dir)) checkDaemonDir(dir, rootless ? uid : 0);
  let stderr: 'ignore' | number = 'ignore';
  if (asItself) {
    // The daemon's stderr (a crash trace) goes to the daemon log.
    stderr = openSync(daemonLog(), 'a', rootless ? 0o600 : 0o644);
  } else {
    // sudo asks for the password once, in the foreground, on the terminal; the daemon is then
    // started without a prompt and holds none of this process's descriptors.
    const validated = spawnSync('sudo', ['-v'], { stdio: 'inherit' });
    if (validated.status !== 0) throw new TelepodError('telepod needs root for its daemon, and sudo refused');
  }
  const [file, ...args] = asItself
    ? command
    : ['sudo', '-n', '--preserve-env=TELEPOD_LOG_LEVEL,TELEPOD_RUN_DIR', ...command];
  progress?.step(rootless ? 'starting the rootless telepod daemon' : 'starting the telepod daemon'); // after sudo's prompt, never over it
  const child = spawn(file!, args, { detached: true, stdio: ['ignore', 'ignore', stderr] });
  child.unref();
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (await daemonRunning()) return;
    if (child.exitCode !== null && child.exitCode !== 0) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new TelepodError(`the telepod daemon did not start (see ${daemonLog()})`);
}

/** Asks the daemon to undo everything and exit; waits until its process is gone. */
export async function quitDaemon(): Promise<boolean> {
  let pid: number;
  try {
    pid = (await callDaemon<DaemonStatus>(DAEMON_PATHS.status)).daemonPid;
  } catch {
    return false;
  }
  await callDaemon(DAEMON_PATHS.quit);
  // Quitting ends the session, and the manager restores what its intercepts changed first.
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && processAlive(pid)) await new Promise((r) => setTimeout(r, 50));
  if (processAlive(pid)) throw new TelepodError(`the telepod daemon (pid ${pid}) did not stop within 60 s`);
  return true;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, but root's
  }
}

/**
 * After a daemon was killed (kill -9), its capture rules are still installed and its marker file
 * says so: start a daemon, which removes them as it starts, and stop it again.
 */
export async function clearStaleState(): Promise<boolean> {
  if (!existsSync(captureMarker()) || (await daemonRunning())) return false;
  await ensureDaemon();
  await quitDaemon();
  return true;
}
