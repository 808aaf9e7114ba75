// The CLI's side of the daemon API: calls over the unix socket, and starting the root daemon
// when none runs (through sudo when the user is not root, as Telepresence does). The daemon's
// directory is $TELEPOD_RUN_DIR (default /run/telepod); a bad value is a usage error here.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync } from 'node:fs';
import http from 'node:http';
import {
  captureMarker,
  checkDaemonDir,
  daemonDir,
  daemonLog,
  DAEMON_PATHS,
  daemonSocket,
  type DaemonError,
  type DaemonStatus,
} from '../protocol/daemon-api.ts';
import { TelepodError } from '../protocol/errors.ts';

export async function callDaemon<T>(path: string, body?: unknown): Promise<T> {
  const socketPath = daemonSocket();
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path, method: 'POST' }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const value = JSON.parse(Buffer.concat(chunks).toString() || '{}') as T | DaemonError;
        if (res.statusCode === 200) resolve(value as T);
        else reject(new TelepodError((value as DaemonError).error, (value as DaemonError).exitCode));
      });
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

export async function daemonRunning(): Promise<boolean> {
  daemonDir(); // a bad TELEPOD_RUN_DIR is the user's error, not "no daemon"
  return callDaemon(DAEMON_PATHS.status).then(
    () => true,
    () => false,
  );
}

export async function ensureDaemon(): Promise<void> {
  if (await daemonRunning()) return;
  const dir = daemonDir();
  const command = [process.execPath, process.argv[1]!, 'daemon'];
  const root = process.getuid?.() === 0;
  if (root) mkdirSync(dir, { recursive: true, mode: 0o755 });
  // The daemon refuses a directory that is not root's alone: say why here, where it is seen.
  if (existsSync(dir)) checkDaemonDir(dir);
  let stderr: 'ignore' | number = 'ignore';
  if (root) {
    // A root CLI sends the daemon's stderr (a crash trace) to the daemon log.
    stderr = openSync(daemonLog(), 'a');
  } else {
    // sudo asks for the password once, in the foreground, on the terminal; the daemon is then
    // started without a prompt and holds none of this process's descriptors.
    const validated = spawnSync('sudo', ['-v'], { stdio: 'inherit' });
    if (validated.status !== 0) throw new TelepodError('telepod needs root for its daemon, and sudo refused');
  }
  const [file, ...args] = root
    ? command
    : ['sudo', '-n', '--preserve-env=TELEPOD_LOG_LEVEL,TELEPOD_RUN_DIR', ...command];
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
