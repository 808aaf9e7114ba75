// A small cache of the cluster's DNS answers, kept for the answers' own TTL (at most 30 s), as
// any stub resolver does: a repeated lookup then costs no round trip through the tunnel.
// Only positive answers are kept; a name that does not exist yet is asked again every time.
import type { Answer, Packet } from 'dns-packet';

/** A record's TTL; OPT pseudo-records carry none. */
const ttlOf = (a: Answer): number => ('ttl' in a ? (a.ttl ?? 0) : 0);

const MAX_TTL_SECONDS = 30;
const MAX_ENTRIES = 4096;

export class DnsCache {
  private readonly entries = new Map<string, { answer: Packet; stored: number; ttl: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  private static key(name: string, type: string): string {
    return `${name.toLowerCase()}|${type}`;
  }

  /** The cached answer with TTLs counted down, or undefined. */
  get(name: string, type: string): Packet | undefined {
    const key = DnsCache.key(name, type);
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    const elapsed = Math.floor((this.now() - entry.stored) / 1000);
    if (elapsed >= entry.ttl) {
      this.entries.delete(key);
      return undefined;
    }
    const age = (a: Answer) => ({ ...a, ttl: Math.max(0, ttlOf(a) - elapsed) }) as Answer;
    return { ...entry.answer, answers: (entry.answer.answers ?? []).map(age) };
  }

  put(name: string, type: string, answer: Packet): void {
    const records = answer.answers ?? [];
    if ((answer as { rcode?: string }).rcode !== 'NOERROR' || !records.length) return;
    const ttl = Math.min(MAX_TTL_SECONDS, ...records.map(ttlOf));
    if (ttl <= 0) return;
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(DnsCache.key(name, type), { answer, stored: this.now(), ttl });
  }
}
