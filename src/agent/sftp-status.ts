// What the agent's file server answers besides data: file attributes, SFTP open flags as
// open(2) flags, and the SFTP status of a failed or refused request.
import { constants, type Stats } from 'node:fs';
import { OPEN_MODE, STATUS_CODE, type Attributes } from 'ssh2/lib/protocol/SFTP.js';

export function attributes(stats: Stats): Attributes {
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

export const PARENT_ATTRIBUTES: Attributes = { mode: 0o40555, uid: 0, gid: 0, size: 0, atime: 0, mtime: 0 };

/** A request answered with an SFTP status other than OK. */
export class Refused extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** The SFTP status for a failed request. */
export function statusFor(err: unknown): [number, string] {
  if (err instanceof Refused) return [err.code, err.message];
  const code = (err as NodeJS.ErrnoException).code ?? '';
  if (code === 'ENOENT' || code === 'ENOTDIR') return [STATUS_CODE.NO_SUCH_FILE, code];
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS' || code === 'ELOOP')
    return [STATUS_CODE.PERMISSION_DENIED, code];
  return [STATUS_CODE.FAILURE, code || (err as Error).message];
}

/**
 * The permission bits of a client's mode (or the default): node:fs aborts the process, not
 * just the call, on a mode over 31 bits in open and mkdir.
 */
export function permissions(mode: number | undefined, fallback: number): number {
  return (mode ?? fallback) & 0o7777;
}

/** A request argument that must be a string (ssh2 passes undefined for some malformed packets). */
export function text(value: unknown): string {
  if (typeof value !== 'string') throw new Refused(STATUS_CODE.BAD_MESSAGE, 'malformed request');
  return value;
}
