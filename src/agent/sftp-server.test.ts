// The agent's file server, driven by OpenSSH's own sftp client (`sftp -D` runs a server
// command on its stdio): reads, writes, listings and renames inside volumes; parents of
// volumes read-only and listing only the way to them; nothing outside the volumes. Then a
// hostile client, over an in-memory stream with hand-written packets: symlinks that lead out of
// a volume are not followed (symlinks inside still work), READ lengths are capped, open handles
// are bounded, modes are masked, and garbage (a 1-byte packet, a zero or oversized length,
// malformed READ and OPEN packets, an unknown type) ends the stream, not the agent.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { access, mkdtemp, mkdir, readFile, rm, symlink, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Duplex, PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { constants } from 'node:fs';
import { OPEN_MODE, STATUS_CODE } from 'ssh2/lib/protocol/SFTP.js';
import { MAX_HANDLES, MAX_READ_LENGTH, serveVolumes } from './sftp-server.ts';
import { openFlags } from './sftp-status.ts';
import { VolumeTree } from './volume-tree.ts';
import { packet, u32, type Field } from './sftp-packets.fixture.ts';

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

const T = { INIT: 1, OPEN: 3, CLOSE: 4, READ: 5, LSTAT: 7, OPENDIR: 11, MKDIR: 14, STAT: 17, READLINK: 19 };
const R = { VERSION: 2, STATUS: 101, HANDLE: 102, DATA: 103, NAME: 104, ATTRS: 105 };

/** A client on an in-memory stream to a fresh server: requests answered by request id. */
class Client {
  readonly toServer = new PassThrough();
  readonly fromServer = new PassThrough();
  readonly stream = Duplex.from({ readable: this.toServer, writable: this.fromServer });
  private received = Buffer.alloc(0);
  private readonly waiting = new Map<number, (payload: Buffer) => void>();
  private nextId = 1;

  constructor(mounts: string[]) {
    this.stream.on('error', () => undefined); // the server destroys the stream on garbage
    serveVolumes(this.stream, mounts);
    this.fromServer.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk]);
      while (this.received.length >= 4 && this.received.length >= 4 + this.received.readUInt32BE(0)) {
        const payload = this.received.subarray(4, 4 + this.received.readUInt32BE(0));
        this.received = this.received.subarray(4 + payload.length);
        const id = payload[0] === R.VERSION ? 0 : payload.readUInt32BE(1);
        this.waiting.get(id)?.(payload);
        this.waiting.delete(id);
      }
    });
  }

  /** Sends a request; resolves with the answer's payload (type byte first). */
  request(type: number, fields: Field[]): Promise<Buffer> {
    const id = type === T.INIT ? 0 : this.nextId++;
    const answer = new Promise<Buffer>((resolve) => this.waiting.set(id, resolve));
    this.toServer.write(packet(type, type === T.INIT ? fields : [id, ...fields]));
    return answer;
  }

  async init(): Promise<void> {
    assert.equal((await this.request(T.INIT, [3]))[0], R.VERSION);
  }

  /** The status code of an answer, or -1 when it is not a STATUS. */
  static status(payload: Buffer): number {
    return payload[0] === R.STATUS ? payload.readUInt32BE(5) : -1;
  }

  /** The handle of a HANDLE answer (fails on anything else). */
  static handle(payload: Buffer): Buffer {
    assert.equal(payload[0], R.HANDLE, `status ${Client.status(payload)}`);
    return payload.subarray(9, 9 + payload.readUInt32BE(5));
  }

  /** The bytes of a DATA answer (fails on anything else). */
  static data(payload: Buffer): Buffer {
    assert.equal(payload[0], R.DATA, `status ${Client.status(payload)}`);
    return payload.subarray(9, 9 + payload.readUInt32BE(5));
  }

  close(): void {
    this.toServer.end();
    this.stream.destroy();
  }
}

describe('serveVolumes against a hostile client', () => {
  let root: string;
  let volume: string;
  let outside: string;

  before(async () => {
    root = await mkdtemp(path.join(tmpdir(), 'telepod-sftp-hard-'));
    volume = path.join(root, 'vol');
    outside = path.join(root, 'outside');
    await mkdir(volume);
    await mkdir(outside);
    await writeFile(path.join(outside, 'secret'), 'not in a volume\n');
    await writeFile(path.join(volume, 'real.txt'), 'inside\n');
    await writeFile(path.join(volume, 'big'), Buffer.alloc(1 << 20, 1));
    await symlink(path.join(outside, 'secret'), path.join(volume, 'evil'));
    await symlink('../outside', path.join(volume, 'evildir'));
    await symlink(path.join(outside, 'created'), path.join(volume, 'dangling'));
    await symlink('real.txt', path.join(volume, 'good'));
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('does not follow a symlink out of the volume', async () => {
    const client = new Client([volume]);
    await client.init();
    const denied = STATUS_CODE.PERMISSION_DENIED;
    const statusOf = async (type: number, fields: Field[]) =>
      Client.status(await client.request(type, fields));
    assert.equal(await statusOf(T.STAT, [`${volume}/evil`]), denied);
    assert.equal(await statusOf(T.OPEN, [`${volume}/evil`, OPEN_MODE.READ, 0]), denied);
    assert.equal(await statusOf(T.OPENDIR, [`${volume}/evildir`]), denied);
    assert.equal(await statusOf(T.OPEN, [`${volume}/evildir/secret`, OPEN_MODE.READ, 0]), denied);
    assert.equal(await statusOf(T.STAT, [`${volume}/evildir/secret`]), denied);
    const created = [`${volume}/dangling`, OPEN_MODE.WRITE | OPEN_MODE.CREAT, 0];
    assert.equal(await statusOf(T.OPEN, created), denied);
    await assert.rejects(access(path.join(outside, 'created')));
    // the link itself is in the volume: lstat and readlink see it, without following it
    assert.equal((await client.request(T.LSTAT, [`${volume}/evil`]))[0], R.ATTRS);
    const link = await client.request(T.READLINK, [`${volume}/evil`]);
    assert.equal(link[0], R.NAME);
    client.close();
  });

  it('follows a symlink that stays inside the volume', async () => {
    const client = new Client([volume]);
    await client.init();
    const handle = Client.handle(await client.request(T.OPEN, [`${volume}/good`, OPEN_MODE.READ, 0]));
    const data = Client.data(await client.request(T.READ, [handle, 0n, 100]));
    assert.equal(data.toString(), 'inside\n');
    assert.equal(Client.status(await client.request(T.CLOSE, [handle])), STATUS_CODE.OK);
    client.close();
  });

  it('caps a READ length at MAX_READ_LENGTH', async () => {
    const client = new Client([volume]);
    await client.init();
    const handle = Client.handle(await client.request(T.OPEN, [`${volume}/big`, OPEN_MODE.READ, 0]));
    const data = Client.data(await client.request(T.READ, [handle, 0n, 0xffffffff]));
    assert.equal(data.length, MAX_READ_LENGTH);
    client.close();
  });

  it('takes a mode over 31 bits (which node:fs would abort on) as its permission bits', async () => {
    const client = new Client([volume]);
    await client.init();
    const PERMISSIONS = 4; // the ATTRS flag
    const created = [`${volume}/moded`, OPEN_MODE.WRITE | OPEN_MODE.CREAT, PERMISSIONS, 0xffffffff];
    Client.handle(await client.request(T.OPEN, created));
    const mkdir = await client.request(T.MKDIR, [`${volume}/moded-dir`, PERMISSIONS, 0xffffffff]);
    assert.equal(Client.status(mkdir), STATUS_CODE.OK);
    client.close();
  });

  it('bounds the open handles of a stream', async () => {
    const client = new Client([volume]);
    await client.init();
    const answers = await Promise.all(
      Array.from({ length: MAX_HANDLES + 1 }, () => client.request(T.OPENDIR, [volume])),
    );
    assert.equal(answers.filter((a) => a[0] === R.HANDLE).length, MAX_HANDLES);
    assert.equal(Client.status(answers.at(-1)!), STATUS_CODE.FAILURE);
    client.close();
  });

  it('ends the stream, not the process, on garbage', async () => {
    const inputs = [
      Buffer.of(1),
      u32(0), // a zero packet length
      u32(0x7fffffff), // far over the packet limit
      Buffer.concat([packet(T.INIT, [3]), packet(T.READ, [1, 0xffffffff])]), // a READ cut short
      // a READ whose handle is longer than the packet: ssh2's parser throws on it
      Buffer.concat([packet(T.INIT, [3]), packet(T.READ, [1, 100, 0n, 0])]),
      Buffer.concat([packet(T.INIT, [3]), packet(T.OPEN, [1])]), // an OPEN without a path
      Buffer.concat([packet(T.INIT, [3]), packet(99, [1])]), // an unknown type
    ];
    for (const input of inputs) {
      const client = new Client([volume]);
      client.toServer.end(input);
      await new Promise((resolve) => setImmediate(resolve));
      client.close();
    }
    const client = new Client([volume]);
    await client.init();
    assert.equal((await client.request(T.STAT, [`${volume}/real.txt`]))[0], R.ATTRS);
    client.close();
  });

  it('answers pipelined requests about one file in order (sshfs stats a file right after creating it)', async () => {
    const client = new Client([volume]);
    await client.init();
    const created = `${volume}/created-${Date.now()}`;
    const CREATE = 0x02 | 0x08 | 0x10; // WRITE | CREAT | TRUNC
    const [open, lstat] = await Promise.all([
      client.request(T.OPEN, [created, CREATE, 0]),
      client.request(T.LSTAT, [created]),
    ]);
    Client.handle(open);
    assert.equal(lstat[0], R.ATTRS, `LSTAT answered with status ${Client.status(lstat)}`);
    client.close();
  });
});
