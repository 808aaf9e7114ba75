// A small cache of the cluster's DNS answers, kept for the answers' own TTL (at most 30 s), as
// any stub resolver does: a repeated lookup then costs no round trip through the tunnel.
// Negative answers (no such name, or no record of that type — the AAAA half of every lookup of
// an IPv4 Service) are kept as RFC 2308 says: for the zone's SOA TTL or minimum, whichever is
// lower, and not at all without an SOA. CoreDNS's is 5 s for cluster.local by default, so a
// Service created just after a failed lookup resolves at most that much later.
import type { Answer, Packet } from 'dns-packet';

/** A record's TTL; OPT pseudo-records carry none; one with the top bit set counts as 0 (RFC 2181). */
const ttlOf = (a: Answer): number => {
  const ttl = 'ttl' in a ? (a.ttl ?? 0) : 0;
  return ttl >= 2 ** 31 ? 0 : ttl;
};

const MAX_TTL_SECONDS = 30;
const MAX_ENTRIES = 4096;

/** How long an answer may be kept: its records' TTL, or a negative answer's SOA; 0 if not. */
function cacheSeconds(answer: Packet): number {
  const rcode = (answer as { rcode?: string }).rcode;
  const records = answer.answers ?? [];
  if (rcode === 'NOERROR' && records.length) return Math.min(...records.map(ttlOf));
  if (rcode !== 'NOERROR' && rcode !== 'NXDOMAIN') return 0; // SERVFAIL, REFUSED…: ask again
  const soa = (answer.authorities ?? []).find((a) => a.type === 'SOA');
  if (!soa || soa.type !== 'SOA') return 0;
  return Math.min(ttlOf(soa), soa.data.minimum ?? 0);
}

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
    return {
      ...entry.answer,
      answers: (entry.answer.answers ?? []).map(age),
      authorities: (entry.answer.authorities ?? []).map(age),
    };
  }

  put(name: string, type: string, answer: Packet): void {
    const ttl = Math.min(MAX_TTL_SECONDS, cacheSeconds(answer));
    if (!(ttl > 0)) return;
    if (this.entries.size >= MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    // An OPT record belongs to one exchange (the asker's EDNS), not to the answer: not replayed.
    const kept = { ...answer, additionals: (answer.additionals ?? []).filter((a) => a.type !== 'OPT') };
    this.entries.set(DnsCache.key(name, type), { answer: kept, stored: this.now(), ttl });
  }
}
