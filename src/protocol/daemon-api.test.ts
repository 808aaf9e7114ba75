// Proves where the daemon keeps its socket and files: $TELEPOD_RUN_DIR when it is a sane
// absolute path, /run/telepod without it, and a usage error for anything else.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { checkDaemonDir, daemonDir, DEFAULT_DAEMON_DIR, rootlessDaemonDir } from './daemon-api.ts';
import { ExitCode, TelepodError } from './errors.ts';

const isUsageError = (pattern: RegExp) => (err: unknown) =>
  err instanceof TelepodError && err.exitCode === ExitCode.usage && pattern.test(err.message);

test('the daemon directory is /run/telepod unless TELEPOD_RUN_DIR says otherwise', () => {
  assert.equal(DEFAULT_DAEMON_DIR, '/run/telepod');
  assert.equal(daemonDir({}), '/run/telepod');
  assert.equal(daemonDir({ TELEPOD_RUN_DIR: '' }), '/run/telepod'); // empty counts as unset
  assert.equal(daemonDir({ TELEPOD_RUN_DIR: '/run/telepod-ws2' }), '/run/telepod-ws2');
});

test('TELEPOD_RUN_DIR is normalised: doubled slashes, `.` and a trailing slash go', () => {
  assert.equal(daemonDir({ TELEPOD_RUN_DIR: '/run//telepod-ws2/' }), '/run/telepod-ws2');
  assert.equal(daemonDir({ TELEPOD_RUN_DIR: '/run/./telepod' }), '/run/telepod');
  assert.equal(daemonDir({ TELEPOD_RUN_DIR: '/' }), '/');
});

test('a relative TELEPOD_RUN_DIR, or one with `..`, is a usage error', () => {
  for (const value of ['run/telepod', './telepod', 'telepod', '~/telepod', '../run', ' /run/telepod']) {
    assert.throws(
      () => daemonDir({ TELEPOD_RUN_DIR: value }),
      isUsageError(/absolute path without "\.\."/),
      value,
    );
  }
  for (const value of ['/run/../etc', '/..', '/run/telepod/..', '/run/..//x']) {
    assert.throws(
      () => daemonDir({ TELEPOD_RUN_DIR: value }),
      isUsageError(/absolute path without "\.\."/),
      value,
    );
  }
  // `..` only as a whole segment: a name that merely contains two dots is fine.
  assert.equal(daemonDir({ TELEPOD_RUN_DIR: '/run/telepod..ws2' }), '/run/telepod..ws2');
});

test('a TELEPOD_RUN_DIR too long for the socket path in it is a usage error', () => {
  const fits = `/${'d'.repeat(107 - '/daemon.sock'.length - 1)}`; // exactly 107 bytes with the socket
  assert.equal(daemonDir({ TELEPOD_RUN_DIR: fits }), fits);
  assert.throws(() => daemonDir({ TELEPOD_RUN_DIR: `${fits}x` }), isUsageError(/too long/));
});

const scratch = mkdtempSync(join(tmpdir(), 'telepod-run-dir-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

test("the daemon takes only a directory that is root's alone", () => {
  const dir = join(scratch, 'run');
  mkdirSync(dir, { mode: 0o755 });
  chmodSync(dir, 0o755); // whatever the umask
  if (process.getuid?.() === 0) {
    checkDaemonDir(dir);
    chmodSync(dir, 0o775);
    assert.throws(() => checkDaemonDir(dir), isUsageError(/is writable by others than root/));
    chmodSync(dir, 0o757);
    assert.throws(() => checkDaemonDir(dir), isUsageError(/is writable by others than root/));
  } else {
    assert.throws(() => checkDaemonDir(dir), isUsageError(/is not owned by root/));
  }
  const file = join(scratch, 'file');
  writeFileSync(file, '');
  assert.throws(() => checkDaemonDir(file), isUsageError(/is not a directory/));
  const link = join(scratch, 'link');
  symlinkSync(dir, link);
  assert.throws(() => checkDaemonDir(link), isUsageError(/is a symbolic link/));
  assert.throws(() => checkDaemonDir(join(scratch, 'missing')), /ENOENT/);
});

test("a rootless daemon's directory: the user's own runtime directory, else /tmp/telepod-<uid>", () => {
  const uid = process.getuid?.() ?? 0;
  const runtime = join(scratch, 'runtime');
  mkdirSync(runtime);
  assert.equal(rootlessDaemonDir(uid, { XDG_RUNTIME_DIR: runtime }), `${runtime}/telepod`);
  // Someone else's runtime directory (su and sudo pass root's on), a missing or relative one: /tmp.
  assert.equal(rootlessDaemonDir(uid + 1, { XDG_RUNTIME_DIR: runtime }), `/tmp/telepod-${uid + 1}`);
  assert.equal(rootlessDaemonDir(uid, { XDG_RUNTIME_DIR: join(scratch, 'gone') }), `/tmp/telepod-${uid}`);
  assert.equal(rootlessDaemonDir(uid, { XDG_RUNTIME_DIR: 'relative' }), `/tmp/telepod-${uid}`);
  assert.equal(rootlessDaemonDir(uid, {}), `/tmp/telepod-${uid}`);
  // TELEPOD_RUN_DIR wins, with the same checks as for the root daemon.
  assert.equal(rootlessDaemonDir(uid, { TELEPOD_RUN_DIR: '/run/x', XDG_RUNTIME_DIR: runtime }), '/run/x');
  assert.throws(() => rootlessDaemonDir(uid, { TELEPOD_RUN_DIR: 'x' }), isUsageError(/absolute path/));
});

test("a rootless daemon takes only a directory that is its user's alone", () => {
  const uid = process.getuid?.() ?? 0;
  const dir = join(scratch, 'user-run');
  mkdirSync(dir, { mode: 0o700 });
  checkDaemonDir(dir, uid);
  assert.throws(
    () => checkDaemonDir(dir, uid + 1),
    isUsageError(new RegExp(`is not owned by uid ${uid + 1}`)),
  );
  chmodSync(dir, 0o770);
  assert.throws(() => checkDaemonDir(dir, uid), isUsageError(/is writable by others than/));
});
