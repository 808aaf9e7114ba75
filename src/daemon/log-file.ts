// The daemon's log file, capped in size: when it grows past the cap it is renamed to
// `<file>.1` (replacing the older one) and a new file is started, so at most twice the cap stays
// on disk. Checked at start and every 30 s; the daemon logs little, so 30 s cannot overshoot much.
import { renameSync, statSync } from 'node:fs';
import { pino } from 'pino';
import { LOG_LEVELS } from '../protocol/daemon-api.ts';

/** 10 MiB per file: days of a busy session's info lines, and little disk. */
export const LOG_CAP_BYTES = 10 << 20;
const CHECK_MS = 30_000;

/** The daemon's level: `$TELEPOD_LOG_LEVEL` when it is one of LOG_LEVELS, else info. */
export function daemonLogLevel(env = process.env): string {
  const wanted = env.TELEPOD_LOG_LEVEL;
  return (LOG_LEVELS as readonly string[]).includes(wanted ?? '') ? wanted! : 'info';
}

/** Moves `file` to `<file>.1` when it is larger than `cap`; answers whether it did. */
export function rotateIfLarge(file: string, cap: number): boolean {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return false; // not there yet
  }
  if (size <= cap) return false;
  renameSync(file, `${file}.1`);
  return true;
}

/** A synchronous pino destination on `file` that rotates as above until `stop()`. */
export function rotatingDestination(file: string, cap = LOG_CAP_BYTES) {
  rotateIfLarge(file, cap);
  // Synchronous: the daemon logs little, and its last lines must survive process.exit().
  const destination = pino.destination({ dest: file, sync: true });
  const timer = setInterval(() => {
    if (rotateIfLarge(file, cap)) destination.reopen();
  }, CHECK_MS).unref();
  return { destination, stop: () => clearInterval(timer) };
}
