// `--mount` is checked before anything changes: a fresh folder by default, an empty writable
// one when named (made if missing), a clear error for a file or a non-empty folder.
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TelepodError } from '../protocol/errors.ts';
import { discardMount, prepareMount } from './pod-context.ts';

describe('prepareMount', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'telepod-mount-test-'));
    await mkdir(path.join(root, 'empty'));
    await mkdir(path.join(root, 'full'));
    await writeFile(path.join(root, 'full', 'x'), '');
    await writeFile(path.join(root, 'file'), '');
  });
  after(() => rm(root, { recursive: true, force: true }));

  const usage = (pattern: RegExp) => (err: unknown) =>
    err instanceof TelepodError && err.exitCode === 2 && pattern.test(err.message);

  it('mounts nothing with --mount=false', async () => {
    assert.equal(await prepareMount('false'), undefined);
  });

  it('makes a fresh empty folder by default, and discards it', async () => {
    const mount = await prepareMount('true');
    assert.ok(mount?.created);
    assert.deepEqual(await readdir(mount.dir), []);
    await discardMount(mount);
    await assert.rejects(stat(mount.dir));
  });

  it('takes an empty folder as it is, and never removes it', async () => {
    const mount = await prepareMount(path.join(root, 'empty'));
    assert.deepEqual(mount && { dir: mount.dir, created: mount.created }, {
      dir: path.join(root, 'empty'),
      created: false,
    });
    await discardMount(mount);
    assert.ok((await stat(path.join(root, 'empty'))).isDirectory());
  });

  it('makes a missing folder', async () => {
    const mount = await prepareMount(path.join(root, 'new', 'deeper'));
    assert.equal(mount?.created, true);
    assert.ok((await stat(path.join(root, 'new', 'deeper'))).isDirectory());
  });

  it('refuses a non-empty folder, a file, and a folder it cannot make', async () => {
    await assert.rejects(prepareMount(path.join(root, 'full')), usage(/the folder is not empty/));
    await assert.rejects(prepareMount(path.join(root, 'file')), usage(/not a folder/));
    await assert.rejects(prepareMount(path.join(root, 'file', 'below')), usage(/cannot create the folder/));
    assert.deepEqual(await readdir(path.join(root, 'full')), ['x']);
  });
});
