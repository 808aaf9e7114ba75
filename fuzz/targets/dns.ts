// Fuzz targets: the daemon's DNS server (src/daemon/dns.ts). Inputs are client datagrams
// (queries for cluster and outside names, valid or mutated, or random bytes), answers from
// the upstream resolver (to the query it was really sent, mutated, or from the wrong address
// or port) and the cluster tunnel's behaviour (an answer, a mutated one, garbage, a failure).
// `dns` drives DnsHandler directly (fast, a fresh handler per input); `dns-udp` sends real
// datagrams to a server on 127.0.0.1 with a fake resolver and a spoofing stranger, and probes
// that a cluster and an outside query are still answered.
// Oracles beyond the harness's: every answer carries the ID of the query it answers, and the
// queries in flight never exceed the limit.
import dgram from 'node:dgram';
import dnsPacket, { type Packet } from 'dns-packet';
import fc from 'fast-check';
import { pino } from 'pino';
import { DnsHandler, MAX_PENDING_QUERIES, startDnsServer, type DnsServer } from '../../src/daemon/dns.ts';
import type { Tunnel } from '../../src/daemon/tunnel.ts';
import type { Instance, Target } from '../harness.ts';
import { applyMutations, mutations, type Mutation } from '../mutate.ts';

const log = pino({ level: 'silent' });
const naming = { namespace: 'default', namespaces: new Set(['default', 'ns']), domain: 'cluster.local' };
const UPSTREAM = '127.0.0.1';

const label = fc.oneof(
  fc.constantFrom('svc', 'ns', 'default', 'cluster', 'local', 'SVC', 'example', 'com', 'a'.repeat(63)),
  fc.stringMatching(/^[a-z0-9-]{1,20}$/),
);
const name = fc.oneof(
  fc.constantFrom(
    'svc',
    'svc.ns',
    'svc.ns.svc',
    'kubernetes.default.svc.cluster.local',
    'example.com',
    '',
    '.',
  ),
  fc.array(label, { minLength: 1, maxLength: 6 }).map((labels) => labels.join('.')),
);
const qtype = fc.constantFrom(
  'A',
  'AAAA',
  'SRV',
  'TXT',
  'PTR',
  'ANY',
  'MX',
  'CNAME',
  'NS',
  'SOA',
) as fc.Arbitrary<'A' | 'AAAA'>;

/** A query, encoded; names dns-packet cannot encode fall back to a plain one. */
const query: fc.Arbitrary<Buffer> = fc
  .record({
    id: fc.nat({ max: 0xffff }),
    flags: fc.oneof(fc.constant(dnsPacket.RECURSION_DESIRED), fc.nat({ max: 0xffff })),
    questions: fc.array(fc.record({ name, type: qtype }), { minLength: 1, maxLength: 2 }),
    edns: fc.boolean(),
  })
  .map(({ id, flags, questions, edns }) => {
    const additionals = edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232 }] : [];
    try {
      return dnsPacket.encode({ id, type: 'query', flags, questions, additionals } as Packet);
    } catch {
      return dnsPacket.encode({ id, type: 'query', questions: [{ name: 'svc', type: 'A' }] });
    }
  });

/** What a client sends: mostly mutated queries. */
const datagram: fc.Arbitrary<Buffer> = fc.oneof(
  { weight: 3, arbitrary: query },
  { weight: 6, arbitrary: fc.tuple(query, mutations()).map(([q, list]) => applyMutations(q, list)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) },
  { weight: 1, arbitrary: fc.constantFrom(Buffer.of(0), Buffer.alloc(12), Buffer.alloc(0)) },
);

/** A well-formed answer to `msg` (its id and questions), with a few A records. */
function answerTo(msg: Buffer, addresses = ['10.96.0.7']): Buffer {
  let q: Packet;
  try {
    q = dnsPacket.decode(msg);
  } catch {
    return Buffer.alloc(12);
  }
  const asked = q.questions?.[0]?.name ?? 'x';
  return dnsPacket.encode({
    id: q.id,
    type: 'response',
    flags: dnsPacket.RECURSION_AVAILABLE,
    questions: q.questions,
    answers: addresses.map((data) => ({ type: 'A', name: asked, ttl: 30, data })),
  });
}

/** How the upstream resolver answers a query it got. */
interface ResolverPlan {
  mode: 'answer' | 'mutated' | 'none' | 'twice' | 'garbage';
  mutations: Mutation[];
  /** Who sends it: the resolver, or the right address from a wrong port, or a wrong address. */
  from: 'resolver' | 'wrong-port' | 'wrong-address';
}

/** How the cluster tunnel answers. */
interface TunnelPlan {
  mode: 'answer' | 'mutated' | 'garbage' | 'reject' | 'later';
  mutations: Mutation[];
}

const resolverPlan: fc.Arbitrary<ResolverPlan> = fc.record({
  mode: fc.constantFrom('answer', 'mutated', 'none', 'twice', 'garbage'),
  mutations: mutations(),
  from: fc.constantFrom('resolver', 'resolver', 'wrong-port', 'wrong-address'),
});
const tunnelPlan: fc.Arbitrary<TunnelPlan> = fc.record({
  mode: fc.constantFrom('answer', 'mutated', 'garbage', 'reject', 'later'),
  mutations: mutations(),
});

/** The answers a plan makes of `query`: possibly none, possibly malformed, possibly two. */
function planned(plan: { mode: string; mutations: Mutation[] }, query: Buffer): Buffer[] {
  const valid = answerTo(query);
  switch (plan.mode) {
    case 'answer':
      return [valid];
    case 'mutated':
      return [applyMutations(valid, plan.mutations)];
    case 'twice':
      return [valid, valid];
    case 'garbage':
      return [applyMutations(Buffer.alloc(1), plan.mutations)];
    default:
      return [];
  }
}

/** A fake tunnel following the plan of the input being run. */
function fakeTunnel(plan: () => TunnelPlan): () => Tunnel {
  const tunnel = {
    async dns(query: Buffer): Promise<Buffer> {
      const { mode } = plan();
      if (mode === 'reject') throw new Error('tunnel down');
      if (mode === 'later') await new Promise((resolve) => setImmediate(resolve));
      return planned(plan(), query)[0] ?? answerTo(query);
    },
  };
  return () => tunnel as unknown as Tunnel;
}

const ticks = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
};

interface DirectInput {
  events: ({ client: Buffer } | { resolver: ResolverPlan })[];
  tunnel: TunnelPlan;
}

/** DnsHandler driven directly: client datagrams and resolver answers, in any order. */
export const dnsTarget: Target<DirectInput> = {
  name: 'dns',
  fullInputs: 300_000,
  inputTimeoutMs: 2000,
  probeEvery: 5000,
  arbitrary: fc.record({
    events: fc.array(
      fc.oneof(
        { weight: 3, arbitrary: fc.record({ client: datagram }) },
        { weight: 2, arbitrary: fc.record({ resolver: resolverPlan }) },
      ),
      { minLength: 1, maxLength: 6 },
    ),
    tunnel: tunnelPlan,
  }),
  start() {
    let tunnelPlanNow: TunnelPlan = { mode: 'answer', mutations: [] };
    const tunnel = fakeTunnel(() => tunnelPlanNow);
    const instance: Instance<DirectInput> = {
      async run(input) {
        tunnelPlanNow = input.tunnel;
        const forwarded: Buffer[] = [];
        const handler = new DnsHandler({ naming, tunnel, log, upstream: UPSTREAM }, (q) => forwarded.push(q));
        const wrongIds: string[] = [];
        try {
          for (const event of input.events) {
            if ('client' in event) {
              const msg = event.client;
              handler.query(msg, (answer) => {
                if (answer.length < 12 || answer.readUInt16BE(0) !== msg.readUInt16BE(0)) {
                  wrongIds.push(answer.toString('hex').slice(0, 64));
                }
              });
            } else {
              const sent = forwarded.at(-1) ?? Buffer.alloc(12);
              const plan = event.resolver;
              const from = {
                address: plan.from === 'wrong-address' ? '127.0.0.2' : UPSTREAM,
                port: plan.from === 'wrong-port' ? 5353 : 53,
              };
              for (const answer of planned(plan, sent)) handler.upstreamAnswer(answer, from);
            }
            if (handler.pending > MAX_PENDING_QUERIES)
              throw new Error(`${handler.pending} queries in flight`);
          }
          await ticks(3);
          if (wrongIds.length) throw new Error(`answers with another query's ID: ${wrongIds.join(', ')}`);
        } finally {
          handler.close();
        }
      },
      async probe() {
        tunnelPlanNow = { mode: 'answer', mutations: [] };
        const handler = new DnsHandler({ naming, tunnel, log, upstream: UPSTREAM }, (q) =>
          handler.upstreamAnswer(answerTo(q), { address: UPSTREAM, port: 53 }),
        );
        const answers: Buffer[] = [];
        for (const asked of ['svc.ns', 'example.com']) {
          handler.query(
            dnsPacket.encode({ id: 5, type: 'query', questions: [{ name: asked, type: 'A' }] }),
            (a) => answers.push(a),
          );
        }
        await ticks(3);
        handler.close();
        if (answers.length !== 2) throw new Error(`probe: ${answers.length} of 2 queries answered`);
      },
      close: () => Promise.resolve(),
    };
    return Promise.resolve(instance);
  },
};

interface UdpInput {
  datagrams: Buffer[];
  resolver: ResolverPlan;
  tunnel: TunnelPlan;
  /** Datagrams a stranger sends to the upstream socket's port. */
  spoofed: Buffer[];
}

async function udpSocket(): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  socket.on('error', () => undefined); // e.g. ICMP unreachable for a datagram to a closed port
  return socket;
}

/** The DNS server over real UDP on 127.0.0.1, with a fake resolver and a spoofing stranger. */
export const dnsUdpTarget: Target<UdpInput> = {
  name: 'dns-udp',
  fullInputs: 100_000,
  inputTimeoutMs: 3000,
  probeEvery: 25,
  arbitrary: fc.record({
    datagrams: fc.array(datagram, { minLength: 1, maxLength: 4 }),
    resolver: resolverPlan,
    tunnel: tunnelPlan,
    spoofed: fc.array(
      fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
      { maxLength: 2 },
    ),
  }),
  async start() {
    let plan: UdpInput | undefined;
    const resolver = await udpSocket();
    const stranger = await udpSocket();
    const client = await udpSocket();
    const prober = await udpSocket();
    const dns: DnsServer = await startDnsServer({
      naming,
      tunnel: fakeTunnel(() => plan?.tunnel ?? { mode: 'answer', mutations: [] }),
      log,
      upstream: UPSTREAM,
      upstreamPort: resolver.address().port,
    });
    resolver.on('message', (msg: Buffer, from) => {
      const probing = msg.includes(Buffer.from('probe'));
      const resolverPlan: ResolverPlan =
        probing || !plan ? { mode: 'answer', mutations: [], from: 'resolver' } : plan.resolver;
      const sender = resolverPlan.from === 'resolver' ? resolver : stranger;
      for (const answer of planned(resolverPlan, msg)) sender.send(answer, from.port, from.address);
    });
    const probeAnswers = new Map<number, () => void>();
    prober.on('message', (msg: Buffer) => msg.length >= 2 && probeAnswers.get(msg.readUInt16BE(0))?.());
    let probeId = 0;
    const ask = (name: string) => {
      const id = probeId++ & 0xffff;
      const answered = new Promise<void>((resolve) => probeAnswers.set(id, resolve));
      prober.send(
        dnsPacket.encode({ id, type: 'query', questions: [{ name, type: 'A' }] }),
        dns.port,
        '127.0.0.1',
      );
      return answered.finally(() => probeAnswers.delete(id));
    };
    return {
      async run(input) {
        plan = input;
        for (const d of input.datagrams) client.send(d, dns.port, '127.0.0.1');
        for (const s of input.spoofed) stranger.send(s, dns.upstreamSourcePort, '127.0.0.1');
        await ticks(2);
      },
      async probe() {
        plan = undefined;
        await Promise.all([ask('probe.svc.ns'), ask('probe.example.com')]);
      },
      close() {
        dns.close();
        for (const s of [resolver, stranger, client, prober]) s.close();
        return Promise.resolve();
      },
    };
  },
};
