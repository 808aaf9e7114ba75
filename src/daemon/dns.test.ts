// Proves the daemon's DNS server takes only well-formed queries (a 1-byte packet or garbage is
// dropped and the server keeps answering), asks the upstream resolver with random query IDs,
// passes back only the asked resolver's answers to outstanding IDs and questions, and bounds
// the queries in flight.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { test } from 'node:test';
import dnsPacket from 'dns-packet';
import { pino } from 'pino';
import { DnsHandler, MAX_PENDING_QUERIES, startDnsServer, type DnsOptions } from './dns.ts';
import type { Tunnel } from './tunnel.ts';

const log = pino({ level: 'silent' });
const naming = { namespace: 'default', namespaces: new Set(['default']), domain: 'cluster.local' };

/** The data of each answer record (OPT records have none). */
const addresses = (msg: Buffer) =>
  (dnsPacket.decode(msg).answers ?? []).map((a) => ('data' in a ? a.data : undefined));
const rcodeOf = (msg: Buffer) => (dnsPacket.decode(msg) as { rcode?: string }).rcode;

const query = (name: string, id = 7) =>
  dnsPacket.encode({
    id,
    type: 'query',
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'A', name }],
  });

/** An answer to `msg` (its id and question) with one A record. */
const answerTo = (msg: Buffer, address: string) => {
  const q = dnsPacket.decode(msg);
  return dnsPacket.encode({
    id: q.id,
    type: 'response',
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
    questions: q.questions,
    answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 5, data: address }],
  });
};

/** A fake cluster tunnel that answers every query with 10.96.0.5. */
const tunnel = (() => ({
  dns: (b: Buffer) => Promise.resolve(answerTo(b, '10.96.0.5')),
})) as unknown as () => Tunnel;

async function udpSocket(): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return socket;
}

/** Sends `msg` to the server from `client` and waits for one answer (or none within 200 ms). */
async function ask(client: dgram.Socket, port: number, msg: Buffer): Promise<Buffer | undefined> {
  const answer = once(client, 'message', { signal: AbortSignal.timeout(200) }).then(
    ([m]) => m as Buffer,
    () => undefined,
  );
  client.send(msg, port, '127.0.0.1');
  return answer;
}

test('a 1-byte packet, garbage and responses are dropped; the server keeps answering', async () => {
  const dns = await startDnsServer({ naming, tunnel, log });
  const client = await udpSocket();
  try {
    assert.equal(await ask(client, dns.port, Buffer.of(1)), undefined);
    assert.equal(await ask(client, dns.port, Buffer.alloc(12)), undefined);
    const response = Buffer.from(query('svc'));
    response[2]! |= 0x80;
    assert.equal(await ask(client, dns.port, response), undefined);
    assert.equal(await ask(client, dns.port, Buffer.concat([query('svc').subarray(0, 14)])), undefined);
    const answer = await ask(client, dns.port, query('svc', 42));
    assert.ok(answer);
    const decoded = dnsPacket.decode(answer);
    assert.equal(decoded.id, 42);
    assert.equal(decoded.answers?.[0]?.name, 'svc');
    assert.deepEqual(addresses(answer), ['10.96.0.5']);
  } finally {
    client.close();
    dns.close();
  }
});

test('upstream queries carry random IDs, mapped back; only the asked resolver is heard', async () => {
  const resolver = await udpSocket();
  const spoofer = await udpSocket();
  const client = await udpSocket();
  const dns = await startDnsServer({
    naming,
    tunnel,
    log,
    upstream: '127.0.0.1',
    upstreamPort: resolver.address().port,
  });
  const ids: number[] = [];
  resolver.on('message', (msg: Buffer, from) => {
    ids.push(msg.readUInt16BE(0));
    // a spoofed answer with the right ID from another port arrives first: it must be ignored
    spoofer.send(answerTo(msg, '6.6.6.6'), from.port, '127.0.0.1');
    setTimeout(() => resolver.send(answerTo(msg, '1.2.3.4'), from.port, from.address), 50);
  });
  try {
    for (let i = 0; i < 8; i++) {
      const answer = await ask(client, dns.port, query(`host${i}.example.com`, 7));
      assert.ok(answer, `answer ${i}`);
      const decoded = dnsPacket.decode(answer);
      assert.equal(decoded.id, 7);
      assert.deepEqual(addresses(answer), ['1.2.3.4']);
    }
    assert.equal(ids.length, 8);
    assert.ok(new Set(ids).size > 1 && !ids.every((id, i) => i === 0 || id === ids[i - 1]! + 1), ids.join());
  } finally {
    for (const s of [resolver, spoofer, client]) s.close();
    dns.close();
  }
});

test('an upstream answer needs the resolver address, an outstanding ID and the same question', () => {
  const sent: Buffer[] = [];
  const replies: Buffer[] = [];
  const options: DnsOptions = { naming, tunnel, log, upstream: '10.0.0.2' };
  const handler = new DnsHandler(options, (msg) => sent.push(msg));
  const resolver = { address: '10.0.0.2', port: 53 };
  handler.query(query('example.com', 9), (a) => replies.push(a));
  const forwarded = sent[0]!;
  handler.upstreamAnswer(Buffer.of(1), resolver);
  handler.upstreamAnswer(answerTo(forwarded, '6.6.6.6'), { address: '10.0.0.3', port: 53 });
  handler.upstreamAnswer(answerTo(forwarded, '6.6.6.6'), { address: '10.0.0.2', port: 5353 });
  const wrongId = answerTo(forwarded, '6.6.6.6');
  wrongId.writeUInt16BE((forwarded.readUInt16BE(0) + 1) & 0xffff, 0);
  handler.upstreamAnswer(wrongId, resolver);
  handler.upstreamAnswer(answerTo(query('other.com', forwarded.readUInt16BE(0)), '6.6.6.6'), resolver);
  assert.equal(replies.length, 0);
  const upper = answerTo(query('EXAMPLE.com', forwarded.readUInt16BE(0)), '1.2.3.4');
  handler.upstreamAnswer(upper, resolver);
  handler.upstreamAnswer(upper, resolver); // answered already
  assert.equal(replies.length, 1);
  assert.equal(dnsPacket.decode(replies[0]!).id, 9);
  assert.equal(handler.pending, 0);
  handler.close();
});

test('queries in flight are bounded: past the limit, SERVFAIL at once', () => {
  const replies: Buffer[] = [];
  const handler = new DnsHandler({ naming, tunnel, log, upstream: '10.0.0.2' }, () => undefined);
  for (let i = 0; i < MAX_PENDING_QUERIES + 10; i++) {
    handler.query(query(`h${i}.example.com`, i), (a) => replies.push(a));
  }
  assert.equal(handler.pending, MAX_PENDING_QUERIES);
  assert.equal(replies.length, 10);
  for (const reply of replies) assert.equal(rcodeOf(reply), 'SERVFAIL');
  handler.close();
  assert.equal(handler.pending, 0);
});
