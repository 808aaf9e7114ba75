// The daemon's DNS server (UDP): cluster names go through the tunnel to the cluster's resolver
// (answers cached for their TTL),
// every other query to the resolver the machine used before, from one fixed source port that
// the nft table leaves alone. Answers keep the name that was asked.
import dgram from 'node:dgram';
import dnsPacket, { type Packet } from 'dns-packet';
import type { Logger } from 'pino';
import { clusterName, type ClusterNaming } from './cluster-names.ts';
import { DnsCache } from './dns-cache.ts';
import type { Tunnel } from './tunnel.ts';

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
  log: Logger;
}

/** A SERVFAIL answer (dns-packet takes the rcode from the low bits of `flags`). */
function servfail(query: Packet): Buffer {
  const SERVFAIL = 2;
  return dnsPacket.encode({
    id: query.id,
    type: 'response',
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | SERVFAIL,
    questions: query.questions,
  });
}

async function askCluster(
  query: Packet,
  fqdn: string,
  asked: string,
  tunnel: Tunnel,
  cache: DnsCache,
): Promise<Buffer> {
  const rename = (n: string) => (n.toLowerCase() === fqdn ? asked : n);
  const type = query.questions?.[0]?.type ?? 'A';
  let answer = cache.get(fqdn, type);
  if (!answer) {
    const forwarded = dnsPacket.encode({
      ...query,
      questions: (query.questions ?? []).map((q) => ({ ...q, name: fqdn })),
    });
    answer = dnsPacket.decode(await tunnel.dns(forwarded));
    cache.put(fqdn, type, answer);
  }
  return dnsPacket.encode({
    ...answer,
    id: query.id,
    questions: (answer.questions ?? []).map((q) => ({ ...q, name: rename(q.name) })),
    answers: (answer.answers ?? []).map((a) => ({ ...a, name: rename(a.name) })),
  });
}

export async function startDnsServer(options: DnsOptions): Promise<DnsServer> {
  const server = dgram.createSocket('udp4');
  const upstream = dgram.createSocket('udp4');
  const pending = new Map<number, { port: number; address: string; id: number }>();
  const cache = new DnsCache();
  let nextId = 1;

  upstream.on('message', (msg) => {
    const client = pending.get(msg.readUInt16BE(0));
    if (!client) return;
    pending.delete(msg.readUInt16BE(0));
    msg.writeUInt16BE(client.id, 0);
    server.send(msg, client.port, client.address);
  });

  server.on('message', (msg, from) => {
    let query: Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const asked = query.questions?.[0]?.name ?? '';
    const fqdn = clusterName(asked, options.naming);
    const send = (answer: Buffer) => server.send(answer, from.port, from.address);
    if (fqdn) {
      askCluster(query, fqdn, asked, options.tunnel(), cache).then(
        (answer) => {
          options.log.debug(
            { name: asked, rcode: (dnsPacket.decode(answer) as { rcode?: string }).rcode },
            'cluster DNS answer',
          );
          send(answer);
        },
        (err: Error) => {
          options.log.debug({ name: asked, err: err.message }, 'cluster DNS query failed');
          send(servfail(query));
        },
      );
    } else if (options.upstream) {
      const id = nextId++ & 0xffff;
      pending.set(id, { port: from.port, address: from.address, id: query.id ?? 0 });
      setTimeout(() => pending.delete(id), 10_000).unref();
      const copy = Buffer.from(msg);
      copy.writeUInt16BE(id, 0);
      upstream.send(copy, 53, options.upstream);
    } else {
      send(servfail(query));
    }
  });

  await new Promise<void>((resolve) => server.bind(0, '127.0.0.1', resolve));
  await new Promise<void>((resolve) => upstream.bind(0, resolve));
  return {
    port: server.address().port,
    upstreamSourcePort: upstream.address().port,
    close() {
      server.close();
      upstream.close();
    },
  };
}
