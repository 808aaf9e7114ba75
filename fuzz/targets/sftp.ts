// Fuzz target: the agent's SFTP server (src/agent/sftp-server.ts) over an in-memory stream,
// with a temporary folder as its only volume: beside it a folder outside every volume, and in
// it files, a subfolder and symlinks that stay inside, lead outside, or dangle outside. Each
// input is an INIT and a few SFTP v3 requests (every request type, paths inside, outside and
// through the symlinks, real and bogus handles, boundary offsets and lengths), valid or
// mutated, delivered in random pieces. An input is done when every complete packet has its
// answer or the server has ended the stream. Oracles beyond the harness's: nothing outside the
// volume changes, and nothing appears there.
import { Duplex, PassThrough } from 'node:stream';
import fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { serveVolumes } from '../../src/agent/sftp-server.ts';
import type { Instance, Target } from '../harness.ts';
import { applyMutations, chunked, cuts, mutations, type Mutation } from '../mutate.ts';
import { packet, u32, type Field } from '../../src/agent/sftp-packets.fixture.ts';

const ROOT = path.join(tmpdir(), `telepod-fuzz-sftp-${process.pid}`);
const VOLUME = path.join(ROOT, 'vol');
const OUTSIDE = path.join(ROOT, 'outside');
const SECRET = 'not in a volume\n';
/** ssh2's packet size limit: a longer packet ends the stream, a shorter one is waited for. */
const MAX_PACKET = 256 * 1024;
/** The fixture is laid anew after this many inputs (the inputs rename, remove and truncate). */
const REFRESH_EVERY = 500;

const T = {
  INIT: 1,
  OPEN: 3,
  CLOSE: 4,
  READ: 5,
  WRITE: 6,
  LSTAT: 7,
  FSTAT: 8,
  SETSTAT: 9,
  FSETSTAT: 10,
  OPENDIR: 11,
  READDIR: 12,
  REMOVE: 13,
  MKDIR: 14,
  RMDIR: 15,
  REALPATH: 16,
  STAT: 17,
  RENAME: 18,
  READLINK: 19,
  SYMLINK: 20,
  EXTENDED: 200,
};

async function layFixture(): Promise<void> {
  // The server of an input that hung may still be writing in the volume: retried (ENOTEMPTY).
  await fs.rm(ROOT, { recursive: true, force: true, maxRetries: 5 });
  await fs.mkdir(path.join(VOLUME, 'sub'), { recursive: true });
  await fs.mkdir(OUTSIDE);
  await fs.writeFile(path.join(OUTSIDE, 'secret'), SECRET);
  await fs.writeFile(path.join(VOLUME, 'real.txt'), 'inside\n');
  await fs.writeFile(path.join(VOLUME, 'sub', 'f'), Buffer.alloc(70_000, 7));
  await fs.symlink(path.join(OUTSIDE, 'secret'), path.join(VOLUME, 'evil'));
  await fs.symlink('../outside', path.join(VOLUME, 'evildir'));
  await fs.symlink(path.join(OUTSIDE, 'created'), path.join(VOLUME, 'dangling'));
  await fs.symlink('real.txt', path.join(VOLUME, 'good'));
  await fs.symlink('sub', path.join(VOLUME, 'gooddir'));
}

/** Throws when anything outside the volume was changed or added. */
async function checkOutside(): Promise<void> {
  const [top, outside, secret] = await Promise.all([
    fs.readdir(ROOT),
    fs.readdir(OUTSIDE),
    fs.readFile(path.join(OUTSIDE, 'secret'), 'utf8'),
  ]);
  if (top.sort().join() !== 'outside,vol' || outside.join() !== 'secret' || secret !== SECRET) {
    throw new Error(
      `outside the volume changed: ${top.join()} | ${outside.join()} | ${JSON.stringify(secret)}`,
    );
  }
}

const pathArb = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      VOLUME,
      `${VOLUME}/real.txt`,
      `${VOLUME}/good`,
      `${VOLUME}/gooddir/f`,
      `${VOLUME}/evil`,
      `${VOLUME}/evildir`,
      `${VOLUME}/evildir/secret`,
      `${VOLUME}/evildir/new`,
      `${VOLUME}/dangling`,
      `${VOLUME}/sub`,
      `${VOLUME}/sub/f`,
      `${VOLUME}/new`,
      `${VOLUME}/../outside/secret`,
      `${VOLUME}/sub/../../outside`,
      ROOT,
      OUTSIDE,
      `${OUTSIDE}/secret`,
      '/',
      '/etc/passwd',
      '.',
      '',
      '..',
      `${VOLUME}/${'a'.repeat(300)}`,
      `${VOLUME}/\0`,
    ),
  },
  { weight: 2, arbitrary: fc.stringMatching(/^[a-z.]{1,8}$/).map((name) => `${VOLUME}/${name}`) },
  { weight: 1, arbitrary: fc.string({ maxLength: 40 }) },
);
/** Handles: the server numbers them 1, 2, … per stream; or bogus bytes. */
const handleArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant(u32(1)) },
  { weight: 2, arbitrary: fc.integer({ min: 2, max: 6 }).map((n) => u32(n)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 8 }) },
);
const word = fc.oneof(fc.nat({ max: 1 << 20 }), fc.constantFrom(0, 0x7fffffff, 0xffffffff), fc.nat());
const offset = fc.oneof(
  { weight: 4, arbitrary: fc.bigInt({ min: 0n, max: 200_000n }) },
  { weight: 1, arbitrary: fc.constantFrom(2n ** 53n, 2n ** 63n, 2n ** 64n - 1n) },
);
const pflags = fc.oneof(
  fc.constantFrom(1, 2, 3, 2 | 8 | 16, 2 | 8 | 32, 2 | 4, 1 | 2 | 8),
  fc.nat({ max: 63 }),
);
/** ATTRS: a flags word and the fields it names (size, uid/gid, permissions, times). */
const attrsArb = fc
  .record({
    size: fc.option(offset),
    ids: fc.option(fc.tuple(word, word)),
    mode: fc.option(fc.oneof(fc.constantFrom(0o644, 0o755, 0o40755, 0), word)),
    times: fc.option(fc.tuple(word, word)),
  })
  .map(({ size, ids, mode, times }) => {
    const flags = (size !== null ? 1 : 0) | (ids ? 2 : 0) | (mode !== null ? 4 : 0) | (times ? 8 : 0);
    const fields: Field[] = [flags];
    if (size !== null) fields.push(size);
    if (ids) fields.push(...ids);
    if (mode !== null) fields.push(mode);
    if (times) fields.push(...times);
    return fields;
  });
const reqid = fc.nat();

const request: fc.Arbitrary<Buffer> = fc.oneof(
  fc.tuple(reqid, pathArb, pflags, attrsArb).map(([id, p, f, a]) => packet(T.OPEN, [id, p, f, ...a])),
  fc.tuple(reqid, handleArb).map(([id, h]) => packet(T.CLOSE, [id, h])),
  fc.tuple(reqid, handleArb, offset, word).map(([id, h, o, n]) => packet(T.READ, [id, h, o, n])),
  fc
    .tuple(reqid, handleArb, offset, fc.uint8Array({ maxLength: 1024 }))
    .map(([id, h, o, d]) => packet(T.WRITE, [id, h, o, d])),
  fc.tuple(reqid, pathArb).map(([id, p]) => packet(T.LSTAT, [id, p])),
  fc.tuple(reqid, pathArb).map(([id, p]) => packet(T.STAT, [id, p])),
  fc.tuple(reqid, handleArb).map(([id, h]) => packet(T.FSTAT, [id, h])),
  fc.tuple(reqid, pathArb, attrsArb).map(([id, p, a]) => packet(T.SETSTAT, [id, p, ...a])),
  fc.tuple(reqid, handleArb, attrsArb).map(([id, h, a]) => packet(T.FSETSTAT, [id, h, ...a])),
  fc.tuple(reqid, pathArb).map(([id, p]) => packet(T.OPENDIR, [id, p])),
  fc.tuple(reqid, handleArb).map(([id, h]) => packet(T.READDIR, [id, h])),
  fc.tuple(reqid, pathArb).map(([id, p]) => packet(T.REMOVE, [id, p])),
  fc.tuple(reqid, pathArb, attrsArb).map(([id, p, a]) => packet(T.MKDIR, [id, p, ...a])),
  fc.tuple(reqid, pathArb).map(([id, p]) => packet(T.RMDIR, [id, p])),
  fc.tuple(reqid, pathArb).map(([id, p]) => packet(T.REALPATH, [id, p])),
  fc.tuple(reqid, pathArb, pathArb).map(([id, a, b]) => packet(T.RENAME, [id, a, b])),
  fc.tuple(reqid, pathArb).map(([id, p]) => packet(T.READLINK, [id, p])),
  fc.tuple(reqid, pathArb, pathArb).map(([id, a, b]) => packet(T.SYMLINK, [id, a, b])),
  fc
    .tuple(
      reqid,
      fc.constantFrom('statvfs@openssh.com', 'posix-rename@openssh.com', 'x'),
      fc.uint8Array({ maxLength: 32 }),
    )
    .map(([id, name, data]) => packet(T.EXTENDED, [id, name, data])),
  fc
    .tuple(fc.nat({ max: 255 }), fc.uint8Array({ maxLength: 16 }))
    .map(([type, body]) => packet(type, [body])),
);

const init = fc.oneof(
  { weight: 8, arbitrary: fc.constant(packet(T.INIT, [3])) },
  { weight: 1, arbitrary: fc.nat().map((v) => packet(T.INIT, [v, 'ext@x', 'data'])) },
  { weight: 1, arbitrary: fc.constant(Buffer.alloc(0)) },
);

/** A first request that opens something, so that handle 1 is real for the requests after it. */
const opener = fc.option(
  fc.constantFrom(
    packet(T.OPEN, [1, `${VOLUME}/real.txt`, 1, 0]),
    packet(T.OPEN, [1, `${VOLUME}/sub/f`, 3, 0]),
    packet(T.OPEN, [1, `${VOLUME}/good`, 1, 0]),
    packet(T.OPEN, [1, `${VOLUME}/new`, 2 | 8 | 16, 0]),
    packet(T.OPENDIR, [1, VOLUME]),
    packet(T.OPENDIR, [1, `${VOLUME}/gooddir`]),
  ),
  { freq: 2 },
);

interface SftpInput {
  init: Buffer;
  opener: Buffer | null;
  requests: Buffer[];
  mutations: Mutation[] | null;
  cuts: number[];
}

/**
 * The bytes the server will act on, and how many answers they call for: complete packets each
 * get one; a last packet cut short is padded, one over the size limit ends the stream.
 */
function framed(bytes: Buffer): { bytes: Buffer; packets: number } {
  let offset = 0;
  let packets = 0;
  while (offset + 4 <= bytes.length) {
    const length = bytes.readUInt32BE(offset);
    if (length === 0 || length > MAX_PACKET) return { bytes: bytes.subarray(0, offset + 4), packets };
    const end = offset + 4 + length;
    packets++;
    if (end >= bytes.length) {
      return { bytes: Buffer.concat([bytes, Buffer.alloc(end - bytes.length)]), packets };
    }
    offset = end;
  }
  return { bytes: bytes.subarray(0, offset), packets };
}

/** Counts the complete packets the server wrote. */
function answerCounter(): { add(chunk: Buffer): void; count: number } {
  let pending = Buffer.alloc(0);
  const counter = {
    count: 0,
    add(chunk: Buffer) {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 4 && pending.length >= 4 + pending.readUInt32BE(0)) {
        pending = pending.subarray(4 + pending.readUInt32BE(0));
        counter.count++;
      }
    },
  };
  return counter;
}

/** One server stream fed `bytes`; resolves once `expected` answers arrived or the stream ended. */
async function serve(chunks: Buffer[], expected: number): Promise<number> {
  const toServer = new PassThrough();
  const fromServer = new PassThrough();
  const stream = Duplex.from({ readable: toServer, writable: fromServer });
  stream.on('error', () => undefined); // as the agent listens: the server destroys it on garbage
  serveVolumes(stream, [VOLUME]);
  const answers = answerCounter();
  const done = new Promise<void>((resolve) => {
    fromServer.on('data', (chunk: Buffer) => {
      answers.add(chunk);
      if (answers.count >= expected) resolve();
    });
    stream.once('close', () => resolve());
    if (expected === 0) resolve();
  });
  for (const chunk of chunks) toServer.write(chunk);
  await done;
  stream.destroy();
  return answers.count;
}

/** The SFTP server, in process, over in-memory streams. */
export const sftpTarget: Target<SftpInput> = {
  name: 'sftp',
  fullInputs: 150_000,
  inputTimeoutMs: 5000,
  probeEvery: 100,
  arbitrary: fc.record({
    init,
    opener,
    requests: fc.array(request, { minLength: 1, maxLength: 8 }),
    mutations: fc.option(mutations(), { freq: 2 }),
    cuts,
  }),
  async start() {
    await layFixture();
    let inputs = 0;
    const instance: Instance<SftpInput> = {
      async run(input) {
        if (++inputs % REFRESH_EVERY === 0) await layFixture();
        const bytes = Buffer.concat([input.init, input.opener ?? Buffer.alloc(0), ...input.requests]);
        const fed = framed(input.mutations ? applyMutations(bytes, input.mutations) : bytes);
        await serve(chunked(fed.bytes, input.cuts), fed.packets);
        await checkOutside();
      },
      async probe() {
        const stat = packet(T.STAT, [7, `${VOLUME}/good`]);
        const answered = await serve([packet(T.INIT, [3]), stat], 2);
        if (answered !== 2) throw new Error(`probe: ${answered} of 2 answers`);
      },
      close: () => fs.rm(ROOT, { recursive: true, force: true }),
    };
    return instance;
  },
};
