// The agent's file server: the container's volume mounts over SFTP v3, for sshfs on the
// workstation. ssh2's SFTP module parses and writes the packets; this file gives it a plain
// byte stream as its channel (no SSH layer: the tunnel already authenticates the session) and
// answers the requests with node:fs. Only the volume mounts are served; their parent folders
// appear as read-only folders listing just the way to the mounts.
import { constants, type Stats } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { OPEN_MODE, SFTP, STATUS_CODE, type Attributes, type FileEntry } from 'ssh2/lib/protocol/SFTP.js';

/** Entries per READDIR answer, so one answer stays far below the 256 KiB packet limit. */
const DIR_BATCH = 100;

type Handle = { file: FileHandle } | { entries: FileEntry[] };

/** Where a path lies: in a volume, on the way to one, or outside every volume. */
type Place = 'volume' | 'parent' | 'none';

export class VolumeTree {
  private readonly mounts: string[];

  constructor(mounts: readonly string[]) {
    this.mounts = mounts.map((m) => path.posix.resolve('/', m));
  }

  static normalize(p: string): string {
    return path.posix.resolve('/', p);
  }

  place(p: string): Place {
    if (this.mounts.some((m) => p === m || p.startsWith(m === '/' ? m : `${m}/`))) return 'volume';
    if (this.mounts.some((m) => p === '/' || m.startsWith(`${p}/`))) return 'parent';
    return 'none';
  }

  /** The names directly under a parent folder that lead to a mount. */
  children(p: string): string[] {
    const prefix = p === '/' ? '/' : `${p}/`;
    const names = this.mounts
      .filter((m) => m.startsWith(prefix))
      .map((m) => m.slice(prefix.length).split('/')[0]!);
    return [...new Set(names)].sort();
  }
}

function attributes(stats: Stats): Attributes {
  return {
    mode: stats.mode,
    uid: stats.uid,
    gid: stats.gid,
    size: stats.size,
    atime: Math.floor(stats.atimeMs / 1000),
    mtime: Math.floor(stats.mtimeMs / 1000),
  };
}

/**
 * SFTP open flags as open(2) flags. Every combination maps, unlike ssh2's own table of fopen
 * modes: the kernel sends an existing file's `> file` as WRITE|TRUNC, with no CREAT.
 */
export function openFlags(pflags: number): number {
  const read = (pflags & OPEN_MODE.READ) !== 0;
  const write = (pflags & OPEN_MODE.WRITE) !== 0;
  let flags = read && write ? constants.O_RDWR : write ? constants.O_WRONLY : constants.O_RDONLY;
  if (pflags & OPEN_MODE.APPEND) flags |= constants.O_APPEND;
  if (pflags & OPEN_MODE.CREAT) flags |= constants.O_CREAT;
  if (pflags & OPEN_MODE.TRUNC) flags |= constants.O_TRUNC;
  if (pflags & OPEN_MODE.EXCL) flags |= constants.O_EXCL;
  return flags;
}

const PARENT_ATTRIBUTES: Attributes = { mode: 0o40555, uid: 0, gid: 0, size: 0, atime: 0, mtime: 0 };

/** The SFTP status for a failed fs call. */
function statusFor(err: unknown): [number, string] {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (code === 'ENOENT' || code === 'ENOTDIR') return [STATUS_CODE.NO_SUCH_FILE, code];
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return [STATUS_CODE.PERMISSION_DENIED, code];
  return [STATUS_CODE.FAILURE, code || (err as Error).message];
}

/** ssh2's SFTP packet layer over a byte stream (the channel it expects is emulated here). */
export function sftpOverStream(stream: Duplex): SFTP {
  const channel = { id: 0, window: Infinity, packetSize: Infinity, state: 'open' };
  const owner = {
    _protocol: {
      channelData: (_id: number, data: Buffer) => void stream.write(data),
      channelClose: () => void stream.end(),
    },
  };
  const sftp = new SFTP(
    owner,
    { type: 'sftp', incoming: { ...channel }, outgoing: channel },
    { server: true },
  );
  stream.on('data', (chunk: Buffer) => sftp.push(chunk));
  stream.once('end', () => sftp.push(null));
  return sftp;
}

/** Serves `mounts` on `stream` until it ends; every open file is closed then. */
export function serveVolumes(stream: Duplex, mounts: readonly string[]): void {
  const tree = new VolumeTree(mounts);
  const sftp = sftpOverStream(stream);
  const handles = new Map<number, Handle>();
  let nextHandle = 1;

  const newHandle = (value: Handle) => {
    const id = nextHandle++;
    handles.set(id, value);
    const buffer = Buffer.alloc(4);
    buffer.writeUInt32BE(id);
    return buffer;
  };
  const lookup = (handle: Buffer) => (handle.length === 4 ? handles.get(handle.readUInt32BE()) : undefined);
  const fileOf = (handle: Buffer) => {
    const value = lookup(handle);
    return value && 'file' in value ? value.file : undefined;
  };

  /** Runs `work`; a thrown fs error becomes the matching status. */
  const answer = (reqid: number, work: () => Promise<void>) => {
    work().catch((err: unknown) => {
      const [code, message] = statusFor(err);
      sftp.status(reqid, code, message);
    });
  };
  /** Like `answer`, for a request that must name a path inside a volume. */
  const inVolume = (reqid: number, paths: string[], work: (...resolved: string[]) => Promise<void>) => {
    const resolved = paths.map((p) => VolumeTree.normalize(p));
    const places = resolved.map((p) => tree.place(p));
    if (places.includes('none')) return sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE);
    if (places.includes('parent')) return sftp.status(reqid, STATUS_CODE.PERMISSION_DENIED, 'read-only');
    answer(reqid, () => work(...resolved));
  };
  const ok = (reqid: number) => sftp.status(reqid, STATUS_CODE.OK);

  const stat = (reqid: number, p: string, follow: boolean) => {
    const resolved = VolumeTree.normalize(p);
    const place = tree.place(resolved);
    if (place === 'parent') return sftp.attrs(reqid, PARENT_ATTRIBUTES);
    inVolume(reqid, [p], async () =>
      sftp.attrs(reqid, attributes(await (follow ? fs.stat : fs.lstat)(resolved))),
    );
  };

  const listing = async (dir: string): Promise<FileEntry[]> => {
    const names = tree.place(dir) === 'parent' ? tree.children(dir) : await fs.readdir(dir);
    const entries: FileEntry[] = [];
    for (const name of names) {
      const full = path.posix.join(dir, name);
      const attrs =
        tree.place(full) === 'parent'
          ? PARENT_ATTRIBUTES
          : await fs.lstat(full).then(attributes, () => undefined);
      if (attrs) entries.push({ filename: name, longname: name, attrs });
    }
    return entries;
  };

  const setAttributes = async (target: string | FileHandle, attrs: Attributes) => {
    const on = typeof target === 'string' ? null : target;
    const p = typeof target === 'string' ? target : '';
    if (attrs.size !== undefined) await (on ? on.truncate(attrs.size) : fs.truncate(p, attrs.size));
    if (attrs.mode !== undefined)
      await (on ? on.chmod(attrs.mode & 0o7777) : fs.chmod(p, attrs.mode & 0o7777));
    if (attrs.atime !== undefined && attrs.mtime !== undefined) {
      await (on ? on.utimes(attrs.atime, attrs.mtime) : fs.utimes(p, attrs.atime, attrs.mtime));
    }
  };

  sftp.on('REALPATH', (reqid: number, p: string) => {
    const resolved = VolumeTree.normalize(p);
    sftp.name(reqid, [{ filename: resolved, longname: resolved, attrs: {} }]);
  });
  sftp.on('STAT', (reqid: number, p: string) => stat(reqid, p, true));
  sftp.on('LSTAT', (reqid: number, p: string) => stat(reqid, p, false));
  sftp.on('OPENDIR', (reqid: number, p: string) => {
    const dir = VolumeTree.normalize(p);
    if (tree.place(dir) === 'none') return sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE);
    answer(reqid, async () => sftp.handle(reqid, newHandle({ entries: await listing(dir) })));
  });
  sftp.on('READDIR', (reqid: number, handle: Buffer) => {
    const value = lookup(handle);
    if (!value || !('entries' in value)) return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle');
    if (!value.entries.length) return sftp.status(reqid, STATUS_CODE.EOF);
    sftp.name(reqid, value.entries.splice(0, DIR_BATCH));
  });
  sftp.on('OPEN', (reqid: number, p: string, flags: number, attrs: Attributes) =>
    inVolume(reqid, [p], async (file) => {
      sftp.handle(reqid, newHandle({ file: await fs.open(file, openFlags(flags), attrs.mode ?? 0o644) }));
    }),
  );
  sftp.on('READ', (reqid: number, handle: Buffer, offset: number, length: number) => {
    const file = fileOf(handle);
    if (!file) return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle');
    answer(reqid, async () => {
      const { bytesRead, buffer } = await file.read(Buffer.alloc(length), 0, length, offset);
      if (bytesRead === 0) sftp.status(reqid, STATUS_CODE.EOF);
      else sftp.data(reqid, buffer.subarray(0, bytesRead));
    });
  });
  sftp.on('WRITE', (reqid: number, handle: Buffer, offset: number, data: Buffer) => {
    const file = fileOf(handle);
    if (!file) return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle');
    answer(reqid, async () => {
      await file.write(data, 0, data.length, offset);
      ok(reqid);
    });
  });
  sftp.on('FSTAT', (reqid: number, handle: Buffer) => {
    const file = fileOf(handle);
    if (!file) return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle');
    answer(reqid, async () => sftp.attrs(reqid, attributes(await file.stat())));
  });
  sftp.on('FSETSTAT', (reqid: number, handle: Buffer, attrs: Attributes) => {
    const file = fileOf(handle);
    if (!file) return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle');
    answer(reqid, async () => {
      await setAttributes(file, attrs);
      ok(reqid);
    });
  });
  sftp.on('SETSTAT', (reqid: number, p: string, attrs: Attributes) =>
    inVolume(reqid, [p], async (file) => {
      await setAttributes(file, attrs);
      ok(reqid);
    }),
  );
  sftp.on('CLOSE', (reqid: number, handle: Buffer) => {
    const value = lookup(handle);
    if (!value) return sftp.status(reqid, STATUS_CODE.FAILURE, 'bad handle');
    handles.delete(handle.readUInt32BE());
    answer(reqid, async () => {
      if ('file' in value) await value.file.close();
      ok(reqid);
    });
  });
  const simple = (event: string, action: (...paths: string[]) => Promise<unknown>) =>
    sftp.on(event, (reqid: number, ...paths: string[]) =>
      inVolume(
        reqid,
        paths.filter((p) => typeof p === 'string'),
        async (...resolved) => {
          await action(...resolved);
          ok(reqid);
        },
      ),
    );
  simple('REMOVE', (p) => fs.unlink(p));
  simple('RMDIR', (p) => fs.rmdir(p));
  simple('RENAME', (from, to) => fs.rename(from, to));
  sftp.on('MKDIR', (reqid: number, p: string, attrs: Attributes) =>
    inVolume(reqid, [p], async (dir) => {
      await fs.mkdir(dir, attrs.mode ?? 0o755);
      ok(reqid);
    }),
  );
  sftp.on('READLINK', (reqid: number, p: string) =>
    inVolume(reqid, [p], async (link) => {
      const target = await fs.readlink(link);
      sftp.name(reqid, [{ filename: target, longname: target, attrs: {} }]);
    }),
  );

  stream.once('close', () => {
    for (const value of handles.values()) if ('file' in value) void value.file.close().catch(() => undefined);
    handles.clear();
  });
}
