// Fuzz target: the SPDY client session (src/kube/spdy.ts), which parses frames that come from
// the node. Each input is a sequence of server frames (replies, data, FINs, resets, pings,
// GOAWAY, SETTINGS, WINDOW_UPDATE, HEADERS, server pushes, unknown types), valid or mutated,
// delivered in random pieces to a session with its two port-forward streams open. Oracles
// beyond the harness's: a stream failed by a protocol error means the transport is destroyed.
import { Duplex } from 'node:stream';
import fc from 'fast-check';
import { SpdySession, type SpdyStream } from '../../src/kube/spdy.ts';
import type { Instance, Target } from '../harness.ts';
import { applyMutations, chunked, cuts, mutations, type Mutation } from '../mutate.ts';

function u32(...values: number[]): Buffer {
  const b = Buffer.alloc(4 * values.length);
  values.forEach((v, i) => b.writeUInt32BE(v >>> 0, 4 * i));
  return b;
}

function control(type: number, flags: number, body: Buffer, version = 3): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt16BE(0x8000 | version, 0);
  header.writeUInt16BE(type, 2);
  header.writeUInt32BE(body.length & 0xffffff, 4);
  header[4] = flags;
  return Buffer.concat([header, body]);
}

function data(id: number, flags: number, payload: Uint8Array): Buffer {
  const header = u32(id & 0x7fffffff, payload.length);
  header[4] = flags;
  return Buffer.concat([header, payload]);
}

const streamId = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(1, 3) }, fc.constantFrom(0, 5), fc.nat());
const flags = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(0, 1) }, fc.nat({ max: 255 }));
const block = fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b));
const word = fc.nat().map((n) => n >>> 0);

/** One frame a server may send. */
const frame: fc.Arbitrary<Buffer> = fc.oneof(
  fc.tuple(streamId, flags, block).map(([id, f, b]) => control(2, f, Buffer.concat([u32(id), b]))),
  fc.tuple(streamId, fc.nat({ max: 12 })).map(([id, status]) => control(3, 0, u32(id, status))),
  word.map((id) => control(6, 0, u32(id))),
  fc.tuple(streamId, word).map(([id, status]) => control(7, 0, u32(id, status))),
  fc
    .array(fc.tuple(word, word), { maxLength: 4 })
    .map((entries) => control(4, 0, u32(entries.length, ...entries.flat()))),
  fc.tuple(streamId, word).map(([id, delta]) => control(9, 0, u32(id, delta))),
  fc.tuple(streamId, flags, block).map(([id, f, b]) => control(8, f, Buffer.concat([u32(id, 0), b]))),
  fc.tuple(streamId, flags, block).map(([id, f, b]) => control(1, f, Buffer.concat([u32(id, 1, 0), b]))),
  fc
    .tuple(fc.nat({ max: 0xffff }), flags, block, fc.nat({ max: 0x7fff }))
    .map(([type, f, b, version]) => control(type, f, b, version)),
  {
    weight: 4,
    arbitrary: fc
      .tuple(streamId, flags, fc.uint8Array({ maxLength: 300 }))
      .map(([id, f, payload]) => data(id, f, payload)),
  },
);

interface SpdyInput {
  frames: Buffer[];
  mutations: Mutation[] | null;
  cuts: number[];
}

/** A session on a transport whose peer bytes are delivered synchronously, with its streams. */
function session(): { transport: Duplex; streams: SpdyStream[]; errors: Error[] } {
  const transport = new Duplex({
    read() {},
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
  const spdy = new SpdySession(transport);
  const streams = [spdy.open({ streamtype: 'error' }), spdy.open({ streamtype: 'data' })];
  const errors: Error[] = [];
  for (const stream of streams) {
    stream.on('error', (err: Error) => errors.push(err)); // as portforward.ts listens
    stream.resume();
  }
  return { transport, streams, errors };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

/** The SPDY frame parser, in process. */
export const spdyTarget: Target<SpdyInput> = {
  name: 'spdy',
  fullInputs: 400_000,
  inputTimeoutMs: 2000,
  probeEvery: 5000,
  arbitrary: fc.record({
    frames: fc.array(frame, { minLength: 1, maxLength: 8 }),
    mutations: fc.option(mutations(), { freq: 3 }),
    cuts,
  }),
  start() {
    const instance: Instance<SpdyInput> = {
      async run(input) {
        const { transport, errors } = session();
        const bytes = Buffer.concat(input.frames);
        const fed = input.mutations ? applyMutations(bytes, input.mutations) : bytes;
        for (const chunk of chunked(fed, input.cuts)) transport.emit('data', chunk);
        await tick();
        if (errors.some((e) => e.message.startsWith('SPDY protocol error')) && !transport.destroyed) {
          throw new Error('a protocol error left the transport open');
        }
        transport.destroy();
      },
      async probe() {
        const { transport, streams } = session();
        let text = '';
        streams[1]!.on('data', (chunk: Buffer) => (text += chunk.toString()));
        transport.emit('data', Buffer.concat([control(2, 0, u32(3)), data(3, 1, Buffer.from('alive'))]));
        await tick();
        if (text !== 'alive') throw new Error(`probe read ${JSON.stringify(text)}`);
        transport.destroy();
      },
      close: () => Promise.resolve(),
    };
    return Promise.resolve(instance);
  },
};
