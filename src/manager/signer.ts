// The install's HMAC key (Secret `telepod-manager-undo-key`): what a manager writes into the
// cluster to find again after a restart (undo records, injection state, session leases) is
// signed with it, because anyone who may annotate a workload or write a Lease could forge it.
import { createHmac, timingSafeEqual } from 'node:crypto';

/** Signs texts and checks signatures with one key. */
export class Signer {
  constructor(private readonly key: Buffer) {}

  /** The signature of `text`, base64url. */
  sign(text: string): string {
    return createHmac('sha256', this.key).update(text).digest('base64url');
  }

  /** Whether `signature` is this key's signature of `text` (compared in constant time). */
  verify(text: string, signature: string | undefined): boolean {
    const given = Buffer.from(signature ?? '');
    const expected = Buffer.from(this.sign(text));
    return given.length === expected.length && timingSafeEqual(given, expected);
  }
}
