// Unit tests of joining a tunnel stream to sshfs's pipes: a child gone first ends the stream
// instead of throwing EPIPE out of the daemon; and of the check that sshfs is installed, asked
// once it was found, again while it was not.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { test } from 'node:test';
import { joinToProcess, sshfsMissing } from './mounts.ts';

test('a child that closed its stdin (sshfs unmounting) while the stream still delivers: the stream ends, nothing is thrown', async () => {
  // Like a tunnel stream: what it delivers is independent of what is written to it.
  const stream = new Duplex({ read() {}, write: (_chunk, _encoding, done) => done() });
  const child = spawn('sh', ['-c', 'exec 0<&-; sleep 2'], { stdio: ['pipe', 'pipe', 'ignore'] });
  joinToProcess(stream, child);
  const uncaught: Error[] = [];
  const onUncaught = (err: Error) => uncaught.push(err);
  process.on('uncaughtException', onUncaught);
  try {
    // Written until the dead child's stdin fails (EPIPE) and destroys the stream.
    const chunk = Buffer.alloc(64 * 1024);
    for (let i = 0; i < 100 && !stream.destroyed; i++) {
      stream.push(chunk);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.ok(stream.destroyed, 'the stream ended with the child');
    assert.deepEqual(uncaught, []);
  } finally {
    process.off('uncaughtException', onUncaught);
    child.kill();
    await once(child, 'exit');
  }
});

test('a child without pipes is refused', () => {
  const child = spawn('true', [], { stdio: 'ignore' });
  assert.throws(() => joinToProcess(new PassThrough(), child), /no stdin\/stdout/);
});

test('sshfs is looked for until it is found, and then not again', async (t) => {
  if (!existsSync('/dev/fuse')) return t.skip('no /dev/fuse here: the check stops before sshfs');
  const bin = mkdtempSync(join(tmpdir(), 'telepod-sshfs-check-'));
  const calls = join(bin, 'calls');
  const path = process.env.PATH;
  t.after(() => {
    process.env.PATH = path;
    rmSync(bin, { recursive: true, force: true });
  });
  process.env.PATH = bin; // no sshfs at all
  assert.match((await sshfsMissing()) ?? '', /sshfs is not installed: install sshfs/);
  writeFileSync(join(bin, 'sshfs'), `#!/bin/sh\necho called >> '${calls}'\n`, { mode: 0o755 });
  assert.equal(await sshfsMissing(), undefined, 'installed since: found without a new daemon');
  assert.equal(await sshfsMissing(), undefined);
  assert.equal(readFileSync(calls, 'utf8'), 'called\n', 'asked once');
});
