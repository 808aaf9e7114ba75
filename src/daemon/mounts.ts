// The daemon's one owner of FUSE mounts: a pod's volumes on the workstation. Per intercept one
// `sshfs -o passive` speaks SFTP on its stdin/stdout, which the daemon joins to a tunnel stream
// that one of the workload's agents serves. A state file lists every mount point, so the next
// daemon after a crash unmounts what is left and removes the folders telepod made.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile, rmdir } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { DAEMON_DIR, type MountRequest } from '../protocol/daemon-api.ts';
import type { InterceptInfo } from '../protocol/intercept.ts';
import type { Tunnel } from './tunnel.ts';

const run = promisify(execFile);
/** The mount points this daemon made (JSON), kept until they are unmounted. */
const MOUNTS_FILE = `${DAEMON_DIR}/mounts.json`;
const MOUNT_TIMEOUT_MS = 10_000;
const SSHFS_HINT = 'install sshfs and FUSE (Debian/Ubuntu: apt install sshfs)';

interface MountPoint {
  dir: string;
  created: boolean;
}
interface Mounted {
  request: MountRequest;
  sshfs?: ChildProcess;
}

type VolumesInfo = NonNullable<InterceptInfo['volumes']>;

/** A path as /proc/self/mountinfo writes it (space, tab, newline and backslash octal-escaped). */
export function mountinfoPath(path: string): string {
  return path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

async function isMounted(dir: string): Promise<boolean> {
  const escaped = mountinfoPath(dir);
  const table = await readFile('/proc/self/mountinfo', 'utf8');
  return table.split('\n').some((line) => line.split(' ')[4] === escaped);
}

/** Why sshfs cannot run here, or undefined. */
async function sshfsMissing(): Promise<string | undefined> {
  if (!existsSync('/dev/fuse')) return `FUSE is not available (/dev/fuse is missing): ${SSHFS_HINT}`;
  const found = await run('sshfs', ['--version']).then(
    () => true,
    () => false,
  );
  return found ? undefined : `sshfs is not installed: ${SSHFS_HINT}`;
}

async function unmountDir(point: MountPoint): Promise<void> {
  if (await isMounted(point.dir)) await run('fusermount3', ['-u', '-z', point.dir]);
  if (point.created) await rmdir(point.dir).catch(() => undefined);
}

function readState(): MountPoint[] {
  try {
    return JSON.parse(readFileSync(MOUNTS_FILE, 'utf8')) as MountPoint[];
  } catch {
    return [];
  }
}

export class Mounts {
  private readonly mounted = new Map<string, Mounted>();

  constructor(private readonly log: Logger) {}

  /** Unmounts what a crashed daemon left (from the state file) and removes the folders it made. */
  static async clearLeftovers(log: Logger): Promise<void> {
    for (const point of readState()) {
      await unmountDir(point).catch((err: Error) =>
        log.warn({ dir: point.dir, err: err.message }, 'unmount failed'),
      );
      log.info({ dir: point.dir }, 'removed a mount an earlier daemon left');
    }
    rmSync(MOUNTS_FILE, { force: true });
  }

  private saveState(): void {
    const points = [...this.mounted.values()].map(({ request: { dir, created } }) => ({ dir, created }));
    if (points.length) writeFileSync(MOUNTS_FILE, JSON.stringify(points));
    else rmSync(MOUNTS_FILE, { force: true }); // nothing mounted leaves nothing behind
  }

  /**
   * Mounts the volumes behind intercept `id` on `request.dir`. A failure does not fail the
   * intercept: it comes back as a warning, and the folder is removed if the CLI made it.
   */
  async mount(id: string, tunnel: Tunnel, request: MountRequest): Promise<VolumesInfo> {
    const missing = await sshfsMissing();
    if (missing) {
      await unmountDir(request);
      return { warning: `volumes not mounted: ${missing}` };
    }
    this.mounted.set(id, { request });
    this.saveState(); // before sshfs starts, so a crash from here on leaves a record
    const result = await this.start(id, tunnel);
    if (!result.root) await this.unmount(id);
    return result;
  }

  /**
   * Mounts an intercept's volumes again on a new tunnel: the old stream ended with the old
   * tunnel, and with it the old sshfs. The folder stays; on failure it is left empty.
   */
  async remount(id: string, tunnel: Tunnel): Promise<VolumesInfo | undefined> {
    const mounted = this.mounted.get(id);
    if (!mounted) return undefined;
    await this.stop(mounted);
    return this.start(id, tunnel);
  }

  private async start(id: string, tunnel: Tunnel): Promise<VolumesInfo> {
    const mounted = this.mounted.get(id)!;
    const { dir, uid, gid } = mounted.request;
    try {
      const stream = await tunnel.volumes(id);
      const options = `passive,allow_other,default_permissions,uid=${uid},gid=${gid}`;
      const sshfs = spawn('sshfs', [':/', dir, '-f', '-o', options], { stdio: ['pipe', 'pipe', 'pipe'] });
      mounted.sshfs = sshfs;
      stream.pipe(sshfs.stdin);
      sshfs.stdout.pipe(stream);
      stream.on('error', () => sshfs.stdin.destroy());
      let stderr = '';
      sshfs.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
      const exited = new Promise<never>((_, reject) =>
        sshfs.once('exit', (code) => reject(new Error(stderr.trim() || `sshfs exited with ${code}`))),
      );
      sshfs.once('exit', () => this.log.info({ dir }, 'sshfs exited'));
      await Promise.race([exited, this.waitMounted(dir)]);
      this.log.info({ id, dir }, 'volumes mounted');
      return { root: dir };
    } catch (err) {
      await this.stop(mounted);
      return { warning: `volumes not mounted: ${(err as Error).message}` };
    }
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
    await unmountDir({ dir, created: false }).catch((err: Error) =>
      this.log.warn({ dir, err: err.message }, 'unmount failed'),
    );
    mounted.sshfs?.kill();
    delete mounted.sshfs;
  }

  /** Unmounts an intercept's volumes and removes the folder if telepod made it. */
  async unmount(id: string): Promise<void> {
    const mounted = this.mounted.get(id);
    if (!mounted) return;
    await this.stop(mounted);
    if (mounted.request.created) await rmdir(mounted.request.dir).catch(() => undefined);
    this.mounted.delete(id);
    this.saveState();
  }

  async unmountAll(): Promise<void> {
    for (const id of [...this.mounted.keys()]) await this.unmount(id);
  }
}
