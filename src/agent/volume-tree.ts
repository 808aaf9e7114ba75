// Which paths the agent's file server serves: the container's volume mounts, and their parent
// folders as read-only folders listing just the way to the mounts.
import fs from 'node:fs/promises';
import path from 'node:path';

/** Where a path lies: in a volume, on the way to one, or outside every volume. */
export type Place = 'volume' | 'parent' | 'none';

export class VolumeTree {
  private readonly mounts: string[];

  constructor(mounts: readonly string[]) {
    this.mounts = mounts.map((m) => path.posix.resolve('/', m));
  }

  static normalize(p: string): string {
    return path.posix.resolve('/', p);
  }

  place(p: string): Place {
    if (this.mounts.some((m) => within(p, m))) return 'volume';
    if (this.mounts.some((m) => p === '/' || m.startsWith(`${p}/`))) return 'parent';
    return 'none';
  }

  isMount(p: string): boolean {
    return this.mounts.includes(p);
  }

  /** The names directly under a parent folder that lead to a mount. */
  children(p: string): string[] {
    const prefix = p === '/' ? '/' : `${p}/`;
    const names = this.mounts
      .filter((m) => m.startsWith(prefix))
      .map((m) => m.slice(prefix.length).split('/')[0]!);
    return [...new Set(names)].sort();
  }

  /** The mounts with their own symlinks resolved (a mount under /var/run may really be in /run). */
  realMounts(): Promise<string[]> {
    return Promise.all(this.mounts.map((m) => fs.realpath(m).catch(() => m)));
  }
}

/** Whether `p` is `root` or below it. */
export function within(p: string, root: string): boolean {
  return p === root || p.startsWith(root === '/' ? root : `${root}/`);
}
