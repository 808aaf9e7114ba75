// Test fixture: builds raw SFTP v3 packets, for the SFTP server's unit tests and its fuzz target.

/** A packet field: strings and bytes length-prefixed, numbers as uint32, bigints as uint64. */
export type Field = string | Uint8Array | number | bigint;

/** An SFTP packet of `type` with `fields`, length-prefixed. */
export function packet(type: number, fields: Field[]): Buffer {
  const parts = fields.map((f) => {
    if (typeof f === 'number') return u32(f);
    if (typeof f === 'bigint') {
      const b = Buffer.alloc(8);
      b.writeBigUInt64BE(BigInt.asUintN(64, f));
      return b;
    }
    const bytes = Buffer.from(f);
    return Buffer.concat([u32(bytes.length), bytes]);
  });
  const body = Buffer.concat([Buffer.of(type), ...parts]);
  return Buffer.concat([u32(body.length), body]);
}

/** A big-endian uint32 (wrapped into range). */
export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value >>> 0);
  return b;
}
