// The daemon's one owner of FUSE mounts: a pod's volumes on the workstation. Per intercept one
// `sshfs -o passive` speaks SFTP on its stdin/stdout, which the daemon joins to a tunnel stream
// that one of the workload's agents serves. A state file lists every mount point, so the next
// daemon after a crash unmounts what is left and removes the folders telepod made.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, rmdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { mountsFile, type MountRequest } from '../protocol/daemon-api.ts';
import type { InterceptInfo } from '../protocol/intercept.ts';
import type { Tunnel } from './tunnel.ts';

const run = promisify(execFile);
/** The mount points this daemon made (JSON), kept until they are unmounted. */
const MOUNT_TIMEOUT_MS = 10_000;
const SSHFS_HINT = 'install sshfs and FUSE (Debian/Ubuntu: apt install sshfs)';

interface MountPoint {
  dir: string;
  created: boolean;
}
interface Mounted {
  request: MountRequest;
  sshfs?: ChildProcess;
  /** Where the volumes are now, or why they are not. */
  volumes: VolumesInfo;
}

type VolumesInfo = NonNullable<InterceptInfo['volumes']>;

/** sshfs's reason, with what to do when it is that FUSE is closed to this user (rootless mode). */
function fuseHint(reason: string): string {
  if (!/\/dev\/fuse: Permission denied/.test(reason)) return reason;
  return `${reason} (FUSE is not open to this user: /dev/fuse needs mode 0666, as udev sets it on Debian and Ubuntu)`;
}

/**
 * Joins a tunnel stream to a child's stdin and stdout. Either side may go first: a child that
 * exits while the stream still delivers (sshfs unmounted at leave) makes writes to its stdin
 * fail with EPIPE, which ends the stream here instead of the daemon.
 */
export function joinToProcess(
  stream: NodeJS.ReadWriteStream & { destroy(): void },
  child: ChildProcess,
): void {
  const { stdin, stdout } = child;
  if (!stdin || !stdout) throw new Error('the child has no stdin/stdout pipes');
  stream.pipe(stdin);
  stdout.pipe(stream);
  stream.on('error', () => stdin.destroy());
  stdin.on('error', () => stream.destroy());
  stdout.on('error', () => stream.destroy());
}

/** A path as /proc/self/mountinfo writes it (space, tab, newline and backslash octal-escaped). */
export function mountinfoPath(path: string): string {
  return path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

async function isMounted(dir: string): Promise<boolean> {
  const escaped = mountinfoPath(dir);
  const table = await readFile('/proc/self/mountinfo', 'utf8');
  return table.split('\n').some((line) => line.split(' ')[4] === escaped);
}

/**
 * Whether `sshfs --version` succeeded: once it did, it is not asked again while this daemon runs (41 ms
 * of every intercept's mount on the testbed, beside its first requests). One not found is asked
 * again next time, so installing sshfs needs no new daemon.
 */
let sshfsFound = false;

/** Why sshfs cannot run here, or undefined. */
export async function sshfsMissing(): Promise<string | undefined> {
  if (!existsSync('/dev/fuse')) return `FUSE is not available (/dev/fuse is missing): ${SSHFS_HINT}`;
  sshfsFound ||= await run('sshfs', ['--version']).then(
    () => true,
    () => false,
  );
  return sshfsFound ? undefined : `sshfs is not installed: ${SSHFS_HINT}`;
}

async function unmountDir(point: MountPoint): Promise<void> {
  if (await isMounted(point.dir)) await run('fusermount3', ['-u', '-z', point.dir]);
  if (point.created) await rmdir(point.dir).catch(() => undefined);
}

function readState(): MountPoint[] {
  try {
    return JSON.parse(readFileSync(mountsFile(), 'utf8')) as MountPoint[];
  } catch {
    return [];
  }
}

/** How long to wait before mounting again after a volume stream ended, at most. */
const REMOUNT_MAX_DELAY_MS = 5_000;

export class Mounts {
  private readonly mounted = new Map<string, Mounted>();

  /** `tunnel` answers the daemon's current tunnel (a new one after each reconnect). */
  constructor(
    private readonly log: Logger,
    private readonly tunnel: () => Tunnel,
  ) {}

  /** Unmounts what a crashed daemon left (from the state file) and removes the folders it made. */
  static async clearLeftovers(log: Logger): Promise<void> {
    for (const point of readState()) {
      await unmountDir(point).catch((err: Error) =>
        log.warn({ dir: point.dir, err: err.message }, 'unmount failed'),
      );
      log.info({ dir: point.dir }, 'removed a mount an earlier daemon left');
    }
    rmSync(mountsFile(), { force: true });
  }

  private saveState(): void {
    const points = [...this.mounted.values()].map(({ request: { dir, created } }) => ({ dir, created }));
    if (points.length) writeFileSync(mountsFile(), JSON.stringify(points));
    else rmSync(mountsFile(), { force: true }); // nothing mounted leaves nothing behind
  }

  /**
   * Mounts the volumes behind intercept `id` on `request.dir`. A failure does not fail the
   * intercept: it comes back as a warning, and the folder is removed if the CLI made it.
   * Once mounted, a volume stream that ends (tunnel reconnect, manager or agent restart) is
   * mounted again by itself until the intercept is left.
   */
  async mount(id: string, request: MountRequest): Promise<VolumesInfo> {
    const missing = await sshfsMissing();
    if (missing) {
      await unmountDir(request);
      return { warning: `volumes not mounted: ${missing}` };
    }
    const mounted: Mounted = { request, volumes: {} };
    this.mounted.set(id, mounted);
    this.saveState(); // before sshfs starts, so a crash from here on leaves a record
    const result = await this.start(id, mounted);
    if (!result.root) await this.unmount(id);
    return result;
  }

  /** Where an intercept's volumes are mounted now, or why they are not. */
  volumes(id: string): VolumesInfo | undefined {
    return this.mounted.get(id)?.volumes;
  }

  private async start(id: string, mounted: Mounted): Promise<VolumesInfo> {
    const { dir, uid, gid } = mounted.request;
    try {
      const stream = await this.tunnel().volumes(id);
      if (this.mounted.get(id) !== mounted) {
        stream.destroy(); // left while the stream was being opened
        throw new Error('the intercept was left');
      }
      // Root mounts for the user (allow_other); a rootless daemon is the user, and FUSE lets a
      // user's mount be opened by that user alone.
      const others = process.getuid?.() === 0 ? 'allow_other,' : '';
      const options = `passive,${others}default_permissions,uid=${uid},gid=${gid}`;
      const sshfs = spawn('sshfs', [':/', dir, '-f', '-o', options], { stdio: ['pipe', 'pipe', 'pipe'] });
      mounted.sshfs = sshfs;
      joinToProcess(stream, sshfs);
      let stderr = '';
      sshfs.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const exited = new Promise<never>((_, reject) => {
        sshfs.once('exit', (code) => reject(new Error(stderr.trim() || `sshfs exited with ${code}`)));
        // Not startable (removed since it was found): a message, not a daemon ended by the event.
        sshfs.on('error', (err) => {
          sshfsFound = false; // looked for again before the next mount
          reject(new Error(`sshfs cannot run: ${err.message}: ${SSHFS_HINT}`));
        });
      });
      sshfs.once('exit', () => this.ended(id, mounted, sshfs));
      await Promise.race([exited, this.waitMounted(dir)]);
      this.log.info({ id, dir }, 'volumes mounted');
      mounted.volumes = { root: dir };
    } catch (err) {
      await this.stop(mounted);
      mounted.volumes = { warning: `volumes not mounted: ${fuseHint((err as Error).message)}` };
    }
    return mounted.volumes;
  }

  /** An sshfs that ended without being stopped: its stream ended; mount again, retrying. */
  private ended(id: string, mounted: Mounted, sshfs: ChildProcess): void {
    this.log.info({ dir: mounted.request.dir }, 'sshfs exited');
    if (mounted.sshfs !== sshfs || this.mounted.get(id) !== mounted || !mounted.volumes.root) return;
    delete mounted.sshfs;
    mounted.volumes = { warning: 'volumes not mounted: the volume stream ended; mounting again' };
    const retry = async (delay: number): Promise<void> => {
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (this.mounted.get(id) !== mounted || mounted.sshfs) return;
      await unmountDir({ dir: mounted.request.dir, created: false }).catch(() => undefined);
      const result = await this.start(id, mounted);
      if (result.root) return;
      this.log.debug({ id, warning: result.warning }, 'mounting again failed; retrying');
      return retry(Math.min(delay * 2, REMOUNT_MAX_DELAY_MS));
    };
    void retry(250);
  }

  private async waitMounted(dir: string): Promise<void> {
    const deadline = Date.now() + MOUNT_TIMEOUT_MS;
    while (!(await isMounted(dir))) {
      if (Date.now() > deadline)
        throw new Error(`${dir} was not mounted within ${MOUNT_TIMEOUT_MS / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** Ends a mount's sshfs and unmounts its folder, which stays. */
  private async stop(mounted: Mounted): Promise<void> {
    const { dir } = mounted.request;
    const sshfs = mounted.sshfs;
    delete mounted.sshfs;
    await unmountDir({ dir, created: false }).catch((err: Error) =>
      this.log.warn({ dir, err: err.message }, 'unmount failed'),
    );
    sshfs?.kill();
  }

  /** Unmounts an intercept's volumes and removes the folder if telepod made it. */
  async unmount(id: string): Promise<void> {
    const mounted = this.mounted.get(id);
    if (!mounted) return;
    this.mounted.delete(id);
    await this.stop(mounted);
    if (mounted.request.created) await rmdir(mounted.request.dir).catch(() => undefined);
    this.saveState();
  }

  async unmountAll(): Promise<void> {
    for (const id of [...this.mounted.keys()]) await this.unmount(id);
  }
}
