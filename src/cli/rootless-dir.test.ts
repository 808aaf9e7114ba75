// Unit tests of finding a rootless daemon: its directory must be the user's alone before its
// socket is used, since a directory another user made in /tmp would let them pose as the daemon.
import assert from 'node:assert/strict';
import { chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ExitCode, TelepodError } from '../protocol/errors.ts';
import { commandEnvironment, useRootlessDaemon } from './daemon-client.ts';

const scratch = mkdtempSync(join(tmpdir(), 'telepod-rootless-dir-'));
const saved = { XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR, TELEPOD_RUN_DIR: process.env.TELEPOD_RUN_DIR };
after(() => {
  rmSync(scratch, { recursive: true, force: true });
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

function inRuntimeDir(name: string): string {
  const runtime = join(scratch, name);
  mkdirSync(runtime, { mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = runtime;
  delete process.env.TELEPOD_RUN_DIR;
  return join(runtime, 'telepod');
}

test("starting: the user's directory is made, 0700, and used", () => {
  const dir = inRuntimeDir('fresh');
  useRootlessDaemon();
  assert.equal(process.env.TELEPOD_RUN_DIR, dir);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
});

test("the user's command gets $TELEPOD_RUN_DIR as the user set it, not the rootless daemon's", () => {
  inRuntimeDir('for-command');
  useRootlessDaemon({ start: false });
  assert.equal(commandEnvironment().TELEPOD_RUN_DIR, undefined); // a plain `telepod` inside: root's daemon
  const own = join(scratch, 'own-run-dir');
  mkdirSync(own, { mode: 0o700 });
  process.env.TELEPOD_RUN_DIR = own;
  useRootlessDaemon({ start: false }); // TELEPOD_RUN_DIR wins for the rootless daemon too
  assert.equal(process.env.TELEPOD_RUN_DIR, own);
  assert.equal(commandEnvironment().TELEPOD_RUN_DIR, own);
});

test('finding one (status, quit) makes nothing', () => {
  const dir = inRuntimeDir('none');
  useRootlessDaemon({ start: false });
  assert.equal(process.env.TELEPOD_RUN_DIR, dir);
  assert.equal(existsSync(dir), false);
});

test(
  'a directory someone else made is refused before its socket is used',
  { skip: process.getuid?.() !== 0 && 'needs root to chown' },
  () => {
    const dir = inRuntimeDir('taken');
    mkdirSync(dir, { mode: 0o755 });
    chownSync(dir, 65534, 65534);
    for (const start of [true, false]) {
      delete process.env.TELEPOD_RUN_DIR;
      assert.throws(
        () => useRootlessDaemon({ start }),
        (err: unknown) =>
          err instanceof TelepodError &&
          err.exitCode === ExitCode.usage &&
          /is not owned by (root|uid \d+)/.test(err.message),
      );
      assert.equal(process.env.TELEPOD_RUN_DIR, undefined, 'not used');
    }
  },
);
