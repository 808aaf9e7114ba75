// The daemon's DNS server (UDP): cluster names go through the tunnel to the cluster's resolver
// (answers cached for their TTL),
// every other query to the resolver the machine used before, from one fixed source port that
// the nft table leaves alone. Answers keep the name that was asked.
// Every datagram is untrusted: anything but a query with one well-formed question is dropped;
// upstream, each query gets a random ID, and only an answer from the resolver asked, with an
// outstanding ID and the same question, is passed back. Queries in flight are bounded.
import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import dnsPacket, { type Packet } from 'dns-packet';
import type { Logger } from 'pino';
import { clusterName, type ClusterNaming } from './cluster-names.ts';
import { DnsCache } from './dns-cache.ts';
import type { Tunnel } from './tunnel.ts';

/** Queries in flight at most (cluster and upstream together); past that, SERVFAIL at once. */
export const MAX_PENDING_QUERIES = 1024;
/** How long an answer may take; then a cluster query fails and an upstream one is forgotten. */
const QUERY_TIMEOUT_MS = 5000;
/** Larger cluster answers are passed on but not cached, so the cache stays within 16 MiB. */
const MAX_CACHED_ANSWER_BYTES = 4096;
const HEADER_LENGTH = 12;
/** The QR bit (a response) in the header's third byte. */
const QR = 0x80;
const MAX_NAME_LENGTH = 255;
const MAX_LABEL_LENGTH = 63;

export interface DnsServer {
  port: number;
  upstreamSourcePort: number;
  close(): void;
}

export interface DnsOptions {
  naming: ClusterNaming;
  tunnel: () => Tunnel;
  /** The machine's resolver; undefined when it was unreachable before connecting. */
  upstream?: string | undefined;
  /** The resolver's port: 53, another one only in tests. */
  upstreamPort?: number | undefined;
  /** A bound socket made elsewhere (the rootless namespace's); by default one on 127.0.0.1. */
  socket?: dgram.Socket;
  /** Sees each answer the cluster's resolver gave (not those from the cache). */
  onClusterAnswer?: ((answer: Packet) => void) | undefined;
  log: Logger;
}

/** Where a datagram came from. */
export interface Peer {
  address: string;
  port: number;
}

interface UpstreamQuery {
  clientId: number;
  /** The question section as sent, lower-cased: the answer must repeat it. */
  question: Buffer;
  reply: (answer: Buffer) => void;
  timer: NodeJS.Timeout;
}

/**
 * The question section of a message with exactly one question (no compression, as a query's
 * first name cannot point anywhere), or undefined when it is not that.
 */
function questionOf(msg: Buffer): Buffer | undefined {
  if (msg.length < HEADER_LENGTH || msg.readUInt16BE(4) !== 1) return undefined;
  let offset = HEADER_LENGTH;
  for (;;) {
    const length = msg[offset];
    if (length === undefined || length > MAX_LABEL_LENGTH) return undefined;
    offset += 1 + length;
    if (offset - HEADER_LENGTH > MAX_NAME_LENGTH) return undefined;
    if (length === 0) break;
  }
  const end = offset + 4; // type and class
  return end <= msg.length ? msg.subarray(HEADER_LENGTH, end) : undefined;
}

/** A copy with ASCII letters lower-cased, for comparing names as DNS does. */
function lowerAscii(bytes: Buffer): Buffer {
  const copy = Buffer.from(bytes);
  for (let i = 0; i < copy.length; i++) if (copy[i]! >= 0x41 && copy[i]! <= 0x5a) copy[i]! |= 0x20;
  return copy;
}

/** A SERVFAIL answer built from the query's header and question bytes (cannot fail to encode). */
function servfail(msg: Buffer, question: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_LENGTH);
  msg.copy(header, 0, 0, 2); // id
  header[2] = QR | (msg[2]! & 0x79); // opcode and RD kept, AA and TC clear
  header[3] = 0x80 | 2; // RA, rcode SERVFAIL
  header.writeUInt16BE(1, 4);
  return Buffer.concat([header, question]);
}

/** The cluster's answer to `query`, renamed back to the name that was asked. */
async function askCluster(
  query: Packet,
  fqdn: string,
  asked: string,
  tunnel: Tunnel,
  cache: DnsCache,
  seen?: (answer: Packet) => void,
): Promise<{ answer: Buffer; rcode: string | undefined }> {
  const rename = (n: string) => (n.toLowerCase() === fqdn ? asked : n);
  const type = query.questions?.[0]?.type ?? 'A';
  // Only the Internet class is kept: the cache knows a name by its type alone.
  const cacheable = (query.questions?.[0]?.class ?? 'IN') === 'IN';
  let answer = cacheable ? cache.get(fqdn, type) : undefined;
  if (!answer) {
    const forwarded = dnsPacket.encode({
      ...query,
      questions: (query.questions ?? []).map((q) => ({ ...q, name: fqdn })),
    });
    const raw = await tunnel.dns(forwarded);
    answer = dnsPacket.decode(raw);
    seen?.(answer);
    if (cacheable && raw.length <= MAX_CACHED_ANSWER_BYTES) cache.put(fqdn, type, answer);
  }
  const encoded = dnsPacket.encode({
    ...answer,
    id: query.id,
    questions: (answer.questions ?? []).map((q) => ({ ...q, name: rename(q.name) })),
    answers: (answer.answers ?? []).map((a) => ({ ...a, name: rename(a.name) })),
  });
  return { answer: encoded, rcode: (answer as { rcode?: string }).rcode };
}

/**
 * What the DNS server does with each datagram, apart from its sockets: tests and the fuzzer
 * drive it directly. `sendUpstream` sends a query to the machine's resolver.
 */
export class DnsHandler {
  private readonly cache = new DnsCache();
  private readonly upstreamQueries = new Map<number, UpstreamQuery>();
  private clusterQueries = 0;
  private readonly upstreamPort: number;

  constructor(
    private readonly options: DnsOptions,
    private readonly sendUpstream: (query: Buffer) => void,
  ) {
    this.upstreamPort = options.upstreamPort ?? 53;
  }

  /** Queries waiting for an answer. */
  get pending(): number {
    return this.clusterQueries + this.upstreamQueries.size;
  }

  /** A client's datagram; `reply` answers it. Anything but a query with one question is dropped. */
  query(msg: Buffer, reply: (answer: Buffer) => void): void {
    if (msg.length < HEADER_LENGTH || msg[2]! & QR) return;
    const question = questionOf(msg);
    if (!question) return;
    let query: Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    if (this.pending >= MAX_PENDING_QUERIES) return reply(servfail(msg, question));
    const asked = query.questions?.[0]?.name ?? '';
    const fqdn = clusterName(asked, this.options.naming);
    if (fqdn) this.toCluster(query, fqdn, asked, msg, question, reply);
    else if (this.options.upstream) this.toUpstream(msg, question, reply);
    else reply(servfail(msg, question));
  }

  /** A datagram on the upstream socket: passed back only if it answers an outstanding query. */
  upstreamAnswer(msg: Buffer, from: Peer): void {
    if (from.address !== this.options.upstream || from.port !== this.upstreamPort) return;
    if (msg.length < HEADER_LENGTH || !(msg[2]! & QR)) return;
    const id = msg.readUInt16BE(0);
    const waiting = this.upstreamQueries.get(id);
    const question = questionOf(msg);
    if (!waiting || !question || !lowerAscii(question).equals(waiting.question)) return;
    this.upstreamQueries.delete(id);
    clearTimeout(waiting.timer);
    const answer = Buffer.from(msg);
    answer.writeUInt16BE(waiting.clientId, 0);
    waiting.reply(answer);
  }

  /** Forgets every query in flight. */
  close(): void {
    for (const waiting of this.upstreamQueries.values()) clearTimeout(waiting.timer);
    this.upstreamQueries.clear();
  }

  private toCluster(
    query: Packet,
    fqdn: string,
    asked: string,
    msg: Buffer,
    question: Buffer,
    reply: (answer: Buffer) => void,
  ): void {
    this.clusterQueries++;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no answer in time')), QUERY_TIMEOUT_MS).unref();
    });
    const { log, tunnel } = this.options;
    const seen = this.options.onClusterAnswer;
    void Promise.race([askCluster(query, fqdn, asked, tunnel(), this.cache, seen), timeout])
      .then(
        ({ answer, rcode }) => {
          log.debug({ name: asked, rcode }, 'cluster DNS answer');
          reply(answer);
        },
        (err: Error) => {
          log.debug({ name: asked, err: err.message }, 'cluster DNS query failed');
          reply(servfail(msg, question));
        },
      )
      .finally(() => {
        clearTimeout(timer);
        this.clusterQueries--;
      });
  }

  private toUpstream(msg: Buffer, question: Buffer, reply: (answer: Buffer) => void): void {
    let id: number;
    do id = randomInt(0x10000);
    while (this.upstreamQueries.has(id));
    const timer = setTimeout(() => this.upstreamQueries.delete(id), QUERY_TIMEOUT_MS).unref();
    this.upstreamQueries.set(id, {
      clientId: msg.readUInt16BE(0),
      question: lowerAscii(question),
      reply,
      timer,
    });
    const copy = Buffer.from(msg);
    copy.writeUInt16BE(id, 0);
    this.sendUpstream(copy);
  }
}

/** Sends a datagram; a failure (the socket closed meanwhile, a full buffer) loses it, as UDP may. */
function sendDatagram(socket: dgram.Socket, msg: Buffer, log: Logger, to?: Peer): void {
  const done = (err: Error | null) => {
    if (err) log.debug({ err: err.message }, 'DNS datagram not sent');
  };
  try {
    if (to) socket.send(msg, to.port, to.address, done);
    else socket.send(msg, done);
  } catch (err) {
    done(err as Error);
  }
}

/**
 * Starts the server on 127.0.0.1. The upstream socket is connected to the resolver, so the
 * kernel bound it to the route's own address and delivers it datagrams from the resolver only;
 * without a resolver it is bound to 127.0.0.1 (its port still names the nft exception).
 */
export async function startDnsServer(options: DnsOptions): Promise<DnsServer> {
  const server = options.socket ?? dgram.createSocket('udp4');
  const upstream = dgram.createSocket('udp4');
  const { log } = options;
  const handler = new DnsHandler(options, (query) => sendDatagram(upstream, query, log));
  server.on('message', (msg, from) =>
    handler.query(msg, (answer) => sendDatagram(server, answer, log, from)),
  );
  upstream.on('message', (msg, from) => handler.upstreamAnswer(msg, from));
  try {
    if (!options.socket) {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.bind(0, '127.0.0.1', () => resolve());
      });
    }
    await new Promise<void>((resolve, reject) => {
      upstream.once('error', reject);
      if (options.upstream) upstream.connect(options.upstreamPort ?? 53, options.upstream, () => resolve());
      else upstream.bind(0, '127.0.0.1', () => resolve());
    });
  } catch (err) {
    server.close();
    upstream.close();
    throw err;
  }
  for (const socket of [server, upstream]) {
    socket.removeAllListeners('error');
    // e.g. ECONNREFUSED on the connected socket when the resolver is down: its queries time out
    socket.on('error', (err) => log.debug({ err: err.message }, 'DNS socket error'));
  }
  return {
    port: server.address().port,
    upstreamSourcePort: upstream.address().port,
    close() {
      handler.close();
      server.close();
      upstream.close();
    },
  };
}
