// The agent's file server, driven by OpenSSH's own sftp client (`sftp -D` runs a server
// command on its stdio): reads, writes, listings and renames inside volumes; parents of
// volumes read-only and listing only the way to them; nothing outside the volumes.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { constants } from 'node:fs';
import { OPEN_MODE } from 'ssh2/lib/protocol/SFTP.js';
import { openFlags, VolumeTree } from './sftp-server.ts';

const run = promisify(execFile);

describe('VolumeTree', () => {
  const tree = new VolumeTree([
    '/var/run/secrets/kubernetes.io/serviceaccount',
    '/data',
    '/etc/app/app.conf',
  ]);
  it('tells volumes, their parents and everything else apart', () => {
    assert.equal(tree.place('/data'), 'volume');
    assert.equal(tree.place('/data/x/y'), 'volume');
    assert.equal(tree.place('/etc/app/app.conf'), 'volume');
    assert.equal(tree.place('/'), 'parent');
    assert.equal(tree.place('/var/run'), 'parent');
    assert.equal(tree.place('/etc/app'), 'parent');
    assert.equal(tree.place('/datax'), 'none');
    assert.equal(tree.place('/etc/passwd'), 'none');
    assert.equal(tree.place('/etc/app/other'), 'none');
  });
  it('lists only the way to the volumes', () => {
    assert.deepEqual(tree.children('/'), ['data', 'etc', 'var']);
    assert.deepEqual(tree.children('/var/run/secrets'), ['kubernetes.io']);
    assert.deepEqual(tree.children('/etc'), ['app']);
  });
  it('normalizes what a client sends', () => {
    assert.equal(VolumeTree.normalize('.'), '/');
    assert.equal(VolumeTree.normalize('/data/../etc//app/'), '/etc/app');
  });
});

describe('openFlags', () => {
  const { O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND, O_EXCL } = constants;
  it('maps every combination, also those no fopen mode names', () => {
    assert.equal(openFlags(OPEN_MODE.READ), O_RDONLY);
    assert.equal(openFlags(OPEN_MODE.WRITE), O_WRONLY); // dd conv=notrunc
    assert.equal(openFlags(OPEN_MODE.WRITE | OPEN_MODE.TRUNC), O_WRONLY | O_TRUNC); // `> existing`
    assert.equal(openFlags(OPEN_MODE.READ | OPEN_MODE.WRITE), O_RDWR);
    assert.equal(
      openFlags(OPEN_MODE.WRITE | OPEN_MODE.CREAT | OPEN_MODE.EXCL | OPEN_MODE.APPEND),
      O_WRONLY | O_CREAT | O_EXCL | O_APPEND,
    );
  });
});

describe('serveVolumes with a real SFTP client', () => {
  let root: string;
  let volume: string;
  let local: string;
  const fixture = path.join(import.meta.dirname, 'sftp-stdio.fixture.ts');

  /** Runs an sftp batch against the server; rejects when a command fails. */
  const sftp = (batch: string) => {
    const server = `${process.execPath} --import tsx ${fixture} ${volume} ${root}/cfg/app.conf`;
    const child = run('sftp', ['-q', '-b', '-', '-D', server]);
    child.child.stdin!.end(batch);
    return child;
  };

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'telepod-sftp-'));
    volume = path.join(root, 'data');
    local = path.join(root, 'local');
    await mkdir(volume);
    await mkdir(local);
    await mkdir(path.join(root, 'cfg'));
    await writeFile(path.join(volume, 'greeting'), 'hello from the pod\n');
    await writeFile(path.join(root, 'cfg', 'app.conf'), 'level=debug\n');
    await writeFile(path.join(root, 'cfg', 'private'), 'not in a volume\n');
    await writeFile(path.join(local, 'upload'), Buffer.alloc(300_000, 7));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('reads, writes, renames and removes inside a volume', async () => {
    await sftp(
      [
        `get ${volume}/greeting ${local}/greeting`,
        `get ${root}/cfg/app.conf ${local}/app.conf`,
        `put ${local}/upload ${volume}/upload`,
        `mkdir ${volume}/sub`,
        `rename ${volume}/upload ${volume}/sub/moved`,
        `put ${local}/greeting ${volume}/gone`,
        `rm ${volume}/gone`,
      ].join('\n'),
    );
    assert.equal(await readFile(path.join(local, 'greeting'), 'utf8'), 'hello from the pod\n');
    assert.equal(await readFile(path.join(local, 'app.conf'), 'utf8'), 'level=debug\n');
    assert.deepEqual(await readFile(path.join(volume, 'sub', 'moved')), Buffer.alloc(300_000, 7));
    assert.deepEqual((await readdir(volume)).sort(), ['greeting', 'sub']);
  });

  it('lists only the way to the volumes in their parents', async () => {
    const { stdout } = await sftp(`ls -1 ${root}\nls -1 ${root}/cfg`);
    const names = stdout
      .split('\n')
      .filter((line) => line.trim() && !line.startsWith('sftp>')) // the batch echoes its commands
      .map((line) => path.basename(line.trim()));
    assert.deepEqual(names, ['cfg', 'data', 'app.conf']);
  });

  it('serves nothing outside the volumes and writes nothing into their parents', async () => {
    await assert.rejects(sftp(`get ${root}/cfg/private ${local}/private`));
    await assert.rejects(sftp(`put ${local}/greeting ${root}/cfg/new`));
    await assert.rejects(sftp(`mkdir ${root}/new`));
    await assert.rejects(sftp(`get /etc/hostname ${local}/hostname`));
    assert.deepEqual((await readdir(path.join(root, 'cfg'))).sort(), ['app.conf', 'private']);
    await assert.rejects(readFile(path.join(local, 'private')));
  });
});
