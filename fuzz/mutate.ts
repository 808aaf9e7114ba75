// Mutations of valid protocol messages, as fast-check arbitraries: bit flips, random bytes,
// length and count fields overwritten with boundary values, truncation, insertion, deletion
// and duplication, and random chunking of a byte stream. Random bytes alone rarely get past a
// parser's first length check; a valid message with a few of these does.
import fc from 'fast-check';

/** Boundary values for a corrupted length, count or id field. */
const INTERESTING = [
  0, 1, 2, 3, 4, 7, 8, 12, 16, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xff, 0x100, 0x3fff, 0x7fff, 0x8000, 0xffff,
  0x10000, 0x40000, 0xfffff, 0x100000, 0xffffff, 0x1000000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
];

/** One edit of a message; positions are taken modulo its length when applied. */
export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'byte'; at: number; value: number }
  | { kind: 'int'; at: number; width: 1 | 2 | 3 | 4; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; count: number }
  | { kind: 'duplicate'; at: number; count: number };

const at = fc.nat({ max: 1 << 16 });

/** A single mutation. */
export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('flip'), at, bit: fc.nat({ max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('byte'), at, value: fc.nat({ max: 255 }) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('int'),
      at,
      width: fc.constantFrom(1, 2, 3, 4),
      value: fc.oneof(fc.constantFrom(...INTERESTING), fc.nat()),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate'), at }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('insert'),
      at,
      bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('delete'), at, count: fc.integer({ min: 1, max: 16 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('duplicate'), at, count: fc.integer({ min: 1, max: 64 }) }),
  },
);

/** One to `max` mutations. */
export const mutations = (max = 4): fc.Arbitrary<Mutation[]> =>
  fc.array(mutation, { minLength: 1, maxLength: max });

/** `message` with one mutation applied (a new buffer). */
function applyOne(message: Buffer, m: Mutation): Buffer {
  const length = message.length;
  const i = length ? m.at % length : 0;
  switch (m.kind) {
    case 'flip': {
      if (!length) return message;
      const copy = Buffer.from(message);
      copy[i]! ^= 1 << m.bit;
      return copy;
    }
    case 'byte': {
      if (!length) return message;
      const copy = Buffer.from(message);
      copy[i] = m.value;
      return copy;
    }
    case 'int': {
      const copy = Buffer.from(message);
      const width = Math.min(m.width, length - i);
      for (let k = 0; k < width; k++) copy[i + k] = (m.value >>> (8 * (m.width - 1 - k))) & 0xff;
      return copy;
    }
    case 'truncate':
      return message.subarray(0, i);
    case 'insert':
      return Buffer.concat([message.subarray(0, i), m.bytes, message.subarray(i)]);
    case 'delete':
      return Buffer.concat([message.subarray(0, i), message.subarray(i + m.count)]);
    case 'duplicate':
      return Buffer.concat([message.subarray(0, i + m.count), message.subarray(i)]);
  }
}

/** `message` with every mutation applied in order. */
export function applyMutations(message: Buffer, list: readonly Mutation[]): Buffer {
  return list.reduce(applyOne, message);
}

/**
 * Inputs for a parser: valid messages as they are, mutated ones (most), and random bytes.
 */
export function bytesFrom(valid: fc.Arbitrary<Buffer>): fc.Arbitrary<Buffer> {
  return fc.oneof(
    { weight: 2, arbitrary: valid },
    { weight: 7, arbitrary: fc.tuple(valid, mutations()).map(([m, list]) => applyMutations(m, list)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b)) },
  );
}

/** Cut points for delivering a byte stream in pieces (as a socket may). */
export const cuts = fc.array(fc.nat({ max: 1 << 16 }), { maxLength: 6 });

/** `bytes` split at the cut points (positions modulo its length), in order. */
export function chunked(bytes: Buffer, points: readonly number[]): Buffer[] {
  if (!bytes.length) return [bytes];
  const offsets = [...new Set(points.map((p) => p % bytes.length))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const offset of offsets) {
    if (offset > start) chunks.push(bytes.subarray(start, offset));
    start = Math.max(start, offset);
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}
