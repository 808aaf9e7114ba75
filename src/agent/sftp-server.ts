// The agent's file server: the container's volume mounts over SFTP v3, for sshfs on the
// workstation. ssh2's SFTP module parses and writes the packets; this file gives it a plain
// byte stream as its channel (no SSH layer: the tunnel already authenticates the session) and
// answers the requests with node:fs. Only the volume mounts are served; their parent folders
// appear as read-only folders listing just the way to the mounts.
// The client is not trusted: a malformed packet ends the stream (never the agent), every path
// is resolved through its symlinks and must stay inside a volume, READ lengths are capped, and
// open handles, requests in flight and unsent answers are bounded per stream.
import { constants } from 'node:fs';
import fs, { type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { OPEN_MODE, SFTP, STATUS_CODE, type Attributes, type FileEntry } from 'ssh2/lib/protocol/SFTP.js';
import {
  attributes,
  openFlags,
  PARENT_ATTRIBUTES,
  permissions,
  Refused,
  statusFor,
  text,
} from './sftp-status.ts';
import { VolumeTree, within } from './volume-tree.ts';

/** Entries per READDIR answer, so one answer stays far below the 256 KiB packet limit. */
const DIR_BATCH = 100;
/** The most a READ returns (a shorter answer is valid SFTP): OpenSSH's own cap, 256 KiB less 1 KiB. */
export const MAX_READ_LENGTH = 255 * 1024;
/** Open files and directories per stream. */
export const MAX_HANDLES = 1024;
/**
 * Requests whose fs work runs at once per stream: one, in the order they arrived. Clients
 * pipeline requests about the same file and count on that order (sshfs sends LSTAT right after
 * the OPEN that creates the file; answered first, it made every new file ENOENT).
 */
const MAX_RUNNING = 1;
/** Requests waiting to run before the stream's input is paused. */
const MAX_WAITING = 256;
/** Answer bytes not yet taken by the stream before queued requests wait for it to drain. */
const MAX_UNSENT = 4 << 20;

type Handle = { file: FileHandle } | { entries: FileEntry[] };

/**
 * ssh2's SFTP packet layer over a byte stream (the channel it expects is emulated here). A
 * packet ssh2 cannot parse (or one over its 256 KiB limit) destroys the stream.
 */
export function sftpOverStream(stream: Duplex): SFTP {
  const channel = { id: 0, window: Infinity, packetSize: Infinity, state: 'open' };
  const owner = {
    _protocol: {
      channelData: (_id: number, data: Buffer) => void (stream.writable && stream.write(data)),
      channelClose: () => void stream.end(),
    },
  };
  const sftp = new SFTP(
    owner,
    { type: 'sftp', incoming: { ...channel }, outgoing: channel },
    { server: true },
  );
  let failed = false;
  const fail = () => {
    failed = true;
    stream.destroy();
  };
  sftp.on('error', fail); // ssh2's protocol errors: its parser state is lost, so is the stream
  stream.on('data', (chunk: Buffer) => {
    if (failed) return;
    try {
      sftp.push(chunk);
    } catch {
      fail(); // some malformed packets make ssh2's parser throw (e.g. a READ without a handle)
    }
  });
  stream.once('end', () => {
    if (!failed) sftp.push(null);
  });
  return sftp;
}

/**
 * The fs work of every stream in this process, one request at a time. A path is checked (its
 * symlinks resolved, kept inside the volumes) and then used; a request of another stream running
 * in between could swap a checked folder for a symlink out of the volume (the fuzzer saw a file
 * outside the volume change once in 1,100,000 inputs while streams overlapped). Node has no
 * openat2(RESOLVE_BENEATH), so check and use must not interleave with other requests.
 */
let fsTail: Promise<unknown> = Promise.resolve();
function exclusively(work: () => Promise<void>): Promise<void> {
  const next = fsTail.then(work, work);
  fsTail = next.catch(() => undefined);
  return next;
}

/**
 * Runs requests' fs work MAX_RUNNING at a time, in order, and never beside another stream's.
 * While too many wait, the stream's input is paused; while its answers are not being taken,
 * nothing more runs.
 */
class Scheduler {
  private running = 0;
  private readonly waiting: (() => Promise<void>)[] = [];

  constructor(private readonly stream: Duplex) {
    stream.on('drain', () => this.next());
  }

  run(work: () => Promise<void>): void {
    this.waiting.push(() => exclusively(work));
    this.next();
  }

  private next(): void {
    while (this.running < MAX_RUNNING && this.waiting.length && this.stream.writableLength < MAX_UNSENT) {
      const work = this.waiting.shift()!;
      this.running++;
      void work().finally(() => {
        this.running--;
        this.next();
      });
    }
    if (this.waiting.length >= MAX_WAITING) this.stream.pause();
    else if (this.stream.isPaused() && !this.stream.destroyed) this.stream.resume();
  }
}

/** Serves `mounts` on `stream` until it ends; every open file is closed then. */
export function serveVolumes(stream: Duplex, mounts: readonly string[]): void {
  const tree = new VolumeTree(mounts);
  const realMounts = tree.realMounts();
  const sftp = sftpOverStream(stream);
  const scheduler = new Scheduler(stream);
  const handles = new Map<number, Handle>();
  let nextHandle = 0;
  let closed = false;

  const roomForHandle = () => {
    if (closed) throw new Refused(STATUS_CODE.FAILURE, 'stream closed');
    if (handles.size >= MAX_HANDLES) throw new Refused(STATUS_CODE.FAILURE, 'too many open handles');
  };
  /** A new handle's id; checked again here, as requests that passed roomForHandle run at once. */
  const newHandle = (value: Handle) => {
    roomForHandle();
    do nextHandle = (nextHandle % 0xffffffff) + 1;
    while (handles.has(nextHandle));
    handles.set(nextHandle, value);
    const buffer = Buffer.alloc(4);
    buffer.writeUInt32BE(nextHandle);
    return buffer;
  };
  const lookup = (handle: unknown) =>
    Buffer.isBuffer(handle) && handle.length === 4 ? handles.get(handle.readUInt32BE()) : undefined;
  const fileOf = (handle: unknown) => {
    const value = lookup(handle);
    if (!value || !('file' in value)) throw new Refused(STATUS_CODE.FAILURE, 'bad handle');
    return value.file;
  };

  /** Queues `work`; a thrown error becomes the matching status. */
  const answer = (reqid: number, work: () => Promise<void> | void) =>
    scheduler.run(async () => {
      try {
        await work();
      } catch (err) {
        const [code, message] = statusFor(err);
        sftp.status(reqid, code, message);
      }
    });
  /** Like `answer`, for a request on paths that must all lie inside a volume (normalized). */
  const inVolume = (reqid: number, paths: unknown[], work: (...normalized: string[]) => Promise<void>) =>
    answer(reqid, async () => {
      const normalized = paths.map((p) => VolumeTree.normalize(text(p)));
      const places = normalized.map((p) => tree.place(p));
      if (places.includes('none')) throw new Refused(STATUS_CODE.NO_SUCH_FILE, 'not in a volume');
      if (places.includes('parent')) throw new Refused(STATUS_CODE.PERMISSION_DENIED, 'read-only');
      await work(...normalized);
    });
  const ok = (reqid: number) => sftp.status(reqid, STATUS_CODE.OK);

  /**
   * The path to operate on for `p` (normalized, in a volume), its symlinks resolved, and refused
   * unless it stays inside a volume. `follow` resolves the last component too; `create` does
   * where it exists (otherwise its folder); `nofollow` keeps it (lstat, readlink, remove, rename).
   */
  const confine = async (p: string, mode: 'follow' | 'create' | 'nofollow'): Promise<string> => {
    const roots = await realMounts;
    const checked = (real: string) => {
      if (!roots.some((root) => within(real, root)))
        throw new Refused(STATUS_CODE.PERMISSION_DENIED, 'leads outside the volumes');
      return real;
    };
    if (mode !== 'nofollow' || tree.isMount(p)) {
      try {
        return checked(await fs.realpath(p));
      } catch (err) {
        if (mode !== 'create' || (err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return path.posix.join(checked(await fs.realpath(path.posix.dirname(p))), path.posix.basename(p));
  };

  const stat = (reqid: number, p: unknown, follow: boolean) =>
    answer(reqid, async () => {
      const normalized = VolumeTree.normalize(text(p));
      const place = tree.place(normalized);
      if (place === 'parent') return sftp.attrs(reqid, PARENT_ATTRIBUTES);
      if (place === 'none') throw new Refused(STATUS_CODE.NO_SUCH_FILE, 'not in a volume');
      const real = await confine(normalized, follow ? 'follow' : 'nofollow');
      sftp.attrs(reqid, attributes(await (follow ? fs.stat : fs.lstat)(real)));
    });

  /** A folder's entries: the way to the volumes in a parent, the real entries in a volume. */
  const listing = async (dir: string): Promise<FileEntry[]> => {
    if (tree.place(dir) === 'parent') {
      return tree.children(dir).map((name) => ({ filename: name, longname: name, attrs: PARENT_ATTRIBUTES }));
    }
    const real = await confine(dir, 'follow');
    const entries: FileEntry[] = [];
    for (const name of await fs.readdir(real)) {
      const attrs = await fs.lstat(path.posix.join(real, name)).then(attributes, () => undefined);
      if (attrs) entries.push({ filename: name, longname: name, attrs });
    }
    return entries;
  };

  const setAttributes = async (target: string | FileHandle, attrs: Attributes) => {
    const on = typeof target === 'string' ? null : target;
    const p = typeof target === 'string' ? target : '';
    if (attrs.size !== undefined) await (on ? on.truncate(attrs.size) : fs.truncate(p, attrs.size));
    if (attrs.mode !== undefined)
      await (on ? on.chmod(permissions(attrs.mode, 0)) : fs.chmod(p, permissions(attrs.mode, 0)));
    if (attrs.atime !== undefined && attrs.mtime !== undefined) {
      await (on ? on.utimes(attrs.atime, attrs.mtime) : fs.utimes(p, attrs.atime, attrs.mtime));
    }
  };

  sftp.on('REALPATH', (reqid: number, p: unknown) =>
    answer(reqid, () => {
      const normalized = VolumeTree.normalize(text(p));
      sftp.name(reqid, [{ filename: normalized, longname: normalized, attrs: {} }]);
    }),
  );
  sftp.on('STAT', (reqid: number, p: unknown) => stat(reqid, p, true));
  sftp.on('LSTAT', (reqid: number, p: unknown) => stat(reqid, p, false));
  sftp.on('OPENDIR', (reqid: number, p: unknown) =>
    answer(reqid, async () => {
      const dir = VolumeTree.normalize(text(p));
      if (tree.place(dir) === 'none') throw new Refused(STATUS_CODE.NO_SUCH_FILE, 'not in a volume');
      roomForHandle();
      sftp.handle(reqid, newHandle({ entries: await listing(dir) }));
    }),
  );
  sftp.on('READDIR', (reqid: number, handle: unknown) =>
    answer(reqid, () => {
      const value = lookup(handle);
      if (!value || !('entries' in value)) throw new Refused(STATUS_CODE.FAILURE, 'bad handle');
      if (!value.entries.length) return sftp.status(reqid, STATUS_CODE.EOF);
      sftp.name(reqid, value.entries.splice(0, DIR_BATCH));
    }),
  );
  sftp.on('OPEN', (reqid: number, p: unknown, pflags: number, attrs: Attributes) =>
    inVolume(reqid, [p], async (normalized) => {
      roomForHandle();
      const real = await confine(normalized, pflags & OPEN_MODE.CREAT ? 'create' : 'follow');
      // O_NOFOLLOW: a created file's name may be a dangling symlink, which must not be followed
      const flags = openFlags(pflags) | constants.O_NOFOLLOW;
      const file = await fs.open(real, flags, permissions(attrs.mode, 0o644));
      try {
        sftp.handle(reqid, newHandle({ file }));
      } catch (err) {
        await file.close();
        throw err;
      }
    }),
  );
  sftp.on('READ', (reqid: number, handle: unknown, offset: number, length: number) =>
    answer(reqid, async () => {
      const file = fileOf(handle);
      const size = Math.min(length, MAX_READ_LENGTH);
      const { bytesRead, buffer } = await file.read(Buffer.alloc(size), 0, size, offset);
      if (bytesRead === 0) sftp.status(reqid, STATUS_CODE.EOF);
      else sftp.data(reqid, buffer.subarray(0, bytesRead));
    }),
  );
  sftp.on('WRITE', (reqid: number, handle: unknown, offset: number, data: Buffer) =>
    answer(reqid, async () => {
      await fileOf(handle).write(data, 0, data.length, offset);
      ok(reqid);
    }),
  );
  sftp.on('FSTAT', (reqid: number, handle: unknown) =>
    answer(reqid, async () => sftp.attrs(reqid, attributes(await fileOf(handle).stat()))),
  );
  sftp.on('FSETSTAT', (reqid: number, handle: unknown, attrs: Attributes) =>
    answer(reqid, async () => {
      await setAttributes(fileOf(handle), attrs);
      ok(reqid);
    }),
  );
  sftp.on('SETSTAT', (reqid: number, p: unknown, attrs: Attributes) =>
    inVolume(reqid, [p], async (normalized) => {
      await setAttributes(await confine(normalized, 'follow'), attrs);
      ok(reqid);
    }),
  );
  sftp.on('CLOSE', (reqid: number, handle: unknown) =>
    answer(reqid, async () => {
      const value = lookup(handle);
      if (!value) throw new Refused(STATUS_CODE.FAILURE, 'bad handle');
      handles.delete((handle as Buffer).readUInt32BE());
      if ('file' in value) await value.file.close();
      ok(reqid);
    }),
  );
  sftp.on('REMOVE', (reqid: number, p: unknown) =>
    inVolume(reqid, [p], async (normalized) => {
      await fs.unlink(await confine(normalized, 'nofollow'));
      ok(reqid);
    }),
  );
  sftp.on('RMDIR', (reqid: number, p: unknown) =>
    inVolume(reqid, [p], async (normalized) => {
      await fs.rmdir(await confine(normalized, 'nofollow'));
      ok(reqid);
    }),
  );
  sftp.on('RENAME', (reqid: number, from: unknown, to: unknown) =>
    inVolume(reqid, [from, to], async (source, target) => {
      await fs.rename(await confine(source, 'nofollow'), await confine(target, 'nofollow'));
      ok(reqid);
    }),
  );
  sftp.on('MKDIR', (reqid: number, p: unknown, attrs: Attributes) =>
    inVolume(reqid, [p], async (normalized) => {
      await fs.mkdir(await confine(normalized, 'create'), permissions(attrs.mode, 0o755));
      ok(reqid);
    }),
  );
  sftp.on('READLINK', (reqid: number, p: unknown) =>
    inVolume(reqid, [p], async (normalized) => {
      const target = await fs.readlink(await confine(normalized, 'nofollow'));
      sftp.name(reqid, [{ filename: target, longname: target, attrs: {} }]);
    }),
  );

  stream.once('close', () => {
    closed = true;
    for (const value of handles.values()) if ('file' in value) void value.file.close().catch(() => undefined);
    handles.clear();
  });
}
