// Fuzz target: the traffic manager's HTTP/2 APIs (createManagerServers in src/manager/server.ts:
// the developer API and the agent API), in process, driven by a node:http2 client. Each input is
// one request to one of them: a method
// (the real ones and others), a path (every API path, variants and random ones), headers
// (the session, agent, volumes, inbound and port headers with garbage values; a valid session
// token for some), a CONNECT authority, and a body (JSON of the right and wrong shapes, not
// JSON, deep nesting, random bytes, over a megabyte), sometimes reset by the client at once.
// Oracles beyond the harness's: each request is answered or reset within the time limit, and
// /healthz still answers 200 (the probe). The manager must not reach the network: CONNECT
// authorities are malformed, refused ones or a local echo server on this machine's own address,
// and name lookups other than localhost fail here (dns.lookup is replaced in this process).
import dgram from 'node:dgram';
import dns from 'node:dns';
import http2 from 'node:http2';
import net, { type AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import fc from 'fast-check';
import { createManagerServers } from '../../src/manager/server.ts';
import { MANAGER_PATHS, SESSION_TOKEN_HEADER } from '../../src/protocol/paths.ts';
import { PROTOCOL_VERSION, TELEPOD_VERSION } from '../../src/protocol/version.ts';
import type { Instance, Target } from '../harness.ts';

/** The token placeholder replaced by a real session token when the input runs. */
const VALID_TOKEN = '<valid session token>';
/** The echo server's address and port, placed into authorities when the input runs. */
const ECHO = '<echo>';
const ECHO_PORT = '<echo port>';
/** This machine's own address (not loopback, which the manager refuses): the echo server's. */
const OWN_ADDRESS =
  Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address ?? '127.0.0.1';
/** How long a long-lived answer (inbound events, a CONNECT) is kept open. */
const LONG_LIVED_MS = 1000;
/** Where the manager sends DNS queries (its port is fixed at 53). */
const DNS_SERVER = '127.0.0.1';

/** Only localhost and IP literals resolve in this process: no name lookup reaches the network. */
type Lookup = typeof dns.lookup;
const sandboxLookup = ((hostname: string, options: unknown, callback?: unknown) => {
  const done = (typeof options === 'function' ? options : callback) as (...args: unknown[]) => void;
  const all = typeof options === 'object' && options !== null && (options as { all?: boolean }).all;
  const address = hostname === 'localhost' ? '127.0.0.1' : hostname;
  const family = net.isIP(address);
  if (family) {
    return void process.nextTick(() =>
      all ? done(null, [{ address, family }]) : done(null, address, family),
    );
  }
  const err = Object.assign(new Error(`fuzz sandbox: no lookup of ${hostname}`), { code: 'ENOTFOUND' });
  process.nextTick(() => done(err));
}) as Lookup;

const printable = fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c));
const garbage = fc.string({ unit: printable, maxLength: 64 });
const headerValue = fc.oneof(
  fc.constantFrom(
    '',
    '0',
    '-1',
    '1',
    '65536',
    '99999',
    'NaN',
    '1e309',
    '[]',
    '{}',
    'null',
    '../../etc/passwd',
    '/data,/var/run/secrets',
    'a'.repeat(8000),
    VALID_TOKEN,
  ),
  garbage,
);
const headerName = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'x-telepod-session',
      'x-telepod-agent',
      'x-telepod-volumes',
      'x-telepod-inbound',
      'x-telepod-port',
      'x-telepod-injection',
      'authorization',
      'content-type',
      'accept',
    ),
  },
  fc.stringMatching(/^x-[a-z0-9-]{1,20}$/),
);
const paths = Object.values(MANAGER_PATHS);
const pathArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom(...paths) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      '/',
      '*',
      '//sessions',
      '/sessions/',
      '/sessions?x=1',
      '/sessions/../healthz',
      '/%00',
      '/SESSIONS',
      `/${'a'.repeat(10_000)}`,
    ),
  },
  { weight: 1, arbitrary: garbage.map((g) => `/${g}`) },
);
const method = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('GET', 'POST', 'CONNECT') },
  { weight: 1, arbitrary: fc.constantFrom('PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'TRACE') },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Z]{1,10}$/) },
);
const authority = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      '[',
      ']',
      ':::',
      '[::1',
      '::1]',
      ':',
      '',
      '%',
      '[%]',
      'a:99999',
      '127.0.0.1:0',
      '127.0.0.1:65536',
      '127.0.0.1:-1',
      '127.0.0.1:x',
      '127.0.0.1:',
      ECHO,
      ECHO,
      `${ECHO}0`,
      `${ECHO}/x`,
      `127.0.0.1:${ECHO_PORT}`,
      `[::1]:${ECHO_PORT}`,
      `[::ffff:127.0.0.1]:${ECHO_PORT}`,
      `169.254.169.254:${ECHO_PORT}`,
      `0.0.0.0:${ECHO_PORT}`,
      `localhost:${ECHO_PORT}`,
      `nowhere.invalid:${ECHO_PORT}`,
      `[${'a'.repeat(10_000)}`,
      `${'a'.repeat(10_000)}:99999`,
    ),
  },
  { weight: 1, arbitrary: fc.string({ unit: fc.constantFrom(...'[]:%@/?#\\ !$&()*+,;=~'), maxLength: 16 }) },
);
/** True once in `n` times. */
const oneIn = (n: number) => fc.nat({ max: n - 1 }).map((k) => k === 0);
const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const body = fc.oneof(
  { weight: 2, arbitrary: fc.constant(null) },
  {
    weight: 3,
    arbitrary: fc
      .record(
        { holder: fc.oneof(garbage, fc.jsonValue()), resumeToken: fc.oneof(garbage, fc.jsonValue()) },
        { requiredKeys: [] },
      )
      .map(json),
  },
  {
    weight: 2,
    arbitrary: fc
      .record(
        {
          id: fc.oneof(garbage, fc.jsonValue()),
          namespace: fc.oneof(garbage, fc.jsonValue()),
          workload: fc.oneof(garbage, fc.jsonValue()),
          mode: fc.oneof(fc.constantFrom('intercept', 'replace', 'swap', 'expose'), garbage),
          ports: fc.oneof(fc.array(fc.record({ local: fc.integer(), remote: garbage })), fc.jsonValue()),
          conn: garbage,
          reason: garbage,
          env: fc.dictionary(garbage, fc.oneof(garbage, fc.jsonValue())),
          pod: garbage,
        },
        { requiredKeys: [] },
      )
      .map(json),
  },
  { weight: 2, arbitrary: fc.jsonValue().map(json) },
  { weight: 2, arbitrary: garbage.map((g) => Buffer.from(g)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 1024 }).map((b) => Buffer.from(b)) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      Buffer.from('['.repeat(100_000)),
      Buffer.from(`"${'x'.repeat(1_500_000)}"`),
      Buffer.alloc(1_500_000, 0x41),
      Buffer.from('{"holder":'),
    ),
  },
);

interface ManagerInput {
  /** The developer API, or the agent API. */
  agents: boolean;
  /** The session header: a live session's token, garbage, or none. */
  token: 'valid' | 'garbage' | 'none';
  method: string;
  path: string;
  authority: string;
  headers: [string, string][];
  body: Buffer | null;
  /** The client resets the stream right after sending. */
  reset: boolean;
}

/** A TCP echo server on this machine's own address: the one place a CONNECT may reach. */
async function echoServer(): Promise<net.Server> {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, OWN_ADDRESS, resolve));
  return server;
}

/** A resolver on DNS_SERVER:53 answering every query with its own bytes, if the port is free. */
async function fakeResolver(): Promise<dgram.Socket | undefined> {
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, from) => socket.send(msg, from.port, from.address));
  return new Promise((resolve) => {
    socket.once('error', () => resolve(undefined)); // not root, or port 53 taken: queries time out
    socket.bind(53, DNS_SERVER, () => resolve(socket));
  });
}

/** Listens on 127.0.0.1; the URL to reach the server. */
async function listen(server: http2.Http2Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** The manager's HTTP/2 APIs, in process. */
export const managerTarget: Target<ManagerInput> = {
  name: 'manager',
  fullInputs: 150_000,
  inputTimeoutMs: 8000,
  probeEvery: 50,
  arbitrary: fc.record({
    agents: oneIn(6),
    token: fc.constantFrom('valid', 'valid', 'garbage', 'none'),
    method,
    path: pathArb,
    authority,
    headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 4 }),
    body,
    reset: oneIn(10),
  }),
  async start() {
    dns.lookup = sandboxLookup;
    const echo = await echoServer();
    const echoPort = String((echo.address() as AddressInfo).port);
    const resolver = await fakeResolver();
    const servers = createManagerServers({ dnsServer: DNS_SERVER });
    const serverSessions = new Set<http2.ServerHttp2Session>();
    for (const server of [servers.developer, servers.agents]) {
      server.on('session', (s) => {
        serverSessions.add(s);
        s.once('close', () => serverSessions.delete(s));
      });
    }
    const urls = { developer: await listen(servers.developer), agents: await listen(servers.agents) };
    const clients: Partial<Record<keyof typeof urls, http2.ClientHttp2Session>> = {};
    const session = (api: keyof typeof urls = 'developer') => {
      const client = clients[api];
      if (client && !client.destroyed && !client.closed) return client;
      const fresh = http2.connect(urls[api]);
      fresh.on('error', () => undefined); // the server may end the connection: a new one follows
      fresh.on('goaway', () => clients[api] === fresh && delete clients[api]);
      clients[api] = fresh;
      return fresh;
    };

    /** One request: its status, 0 for a reset. Rejects only on a hang (via the harness's limit). */
    const send = (
      headers: http2.OutgoingHttpHeaders,
      payload: Buffer | null,
      { reset = false, api = 'developer' }: { reset?: boolean; api?: keyof typeof urls } = {},
    ): Promise<number> => {
      let req: http2.ClientHttp2Stream;
      try {
        req = session(api).request(headers, {
          endStream: payload === null && headers[':method'] !== 'CONNECT',
        });
      } catch {
        return Promise.resolve(-1); // headers node:http2 itself refuses to send
      }
      req.resume(); // answers are read to their end (a stream's 'close' waits for that)
      return new Promise<number>((resolve) => {
        req.on('response', (h) => {
          resolve(Number(h[':status']));
          // long-lived answers (events, a CONNECT) are cancelled after a while; cancelling every
          // stream at once would soon meet nghttp2's reset rate limit (GOAWAY)
          setTimeout(() => req.close(http2.constants.NGHTTP2_CANCEL), LONG_LIVED_MS).unref();
        });
        req.on('close', () => resolve(0));
        req.on('error', () => resolve(0));
        if (payload) req.end(payload);
        else if (headers[':method'] === 'CONNECT') req.end();
        // (at once, before node:http2 sent the headers, the stream would never close on this side)
        if (reset) setImmediate(() => req.close(http2.constants.NGHTTP2_CANCEL));
      });
    };

    let token: string | undefined;
    const openSession = async () => {
      const req = session().request({ ':method': 'POST', ':path': MANAGER_PATHS.sessions });
      req.on('error', () => undefined);
      req.end(
        JSON.stringify({ holder: 'fuzz@localhost', version: TELEPOD_VERSION, protocol: PROTOCOL_VERSION }),
      );
      let text = '';
      for await (const chunk of req) text += String(chunk);
      try {
        token = (JSON.parse(text) as { token?: string }).token;
      } catch {
        token = undefined;
      }
    };

    const instance: Instance<ManagerInput> = {
      async run(input) {
        const fill = (s: string) =>
          s
            .replace(VALID_TOKEN, token ?? 'no-token')
            .replace(ECHO, `${OWN_ADDRESS}:${echoPort}`)
            .replace(ECHO_PORT, echoPort);
        const headers: http2.OutgoingHttpHeaders = { ':method': input.method };
        if (input.method === 'CONNECT') headers[':authority'] = fill(input.authority);
        else headers[':path'] = input.path;
        if (input.token !== 'none')
          headers[SESSION_TOKEN_HEADER] = input.token === 'valid' ? fill(VALID_TOKEN) : 'x';
        for (const [name, value] of input.headers) headers[name] = fill(value);
        await send(headers, input.body, { reset: input.reset, api: input.agents ? 'agents' : 'developer' });
      },
      async probe() {
        // the session lives while it is used (30 s lease); a lapsed or ended one is replaced
        const lease = {
          ':method': 'POST',
          ':path': MANAGER_PATHS.lease,
          [SESSION_TOKEN_HEADER]: token ?? 'x',
        };
        if ((await send(lease, null)) !== 200) await openSession().catch(() => undefined);
        const status = await send({ ':method': 'GET', ':path': MANAGER_PATHS.health }, null);
        if (status !== 200) throw new Error(`probe: /healthz answered ${status}`);
      },
      async close() {
        for (const client of Object.values(clients)) client.destroy();
        for (const s of serverSessions) s.destroy();
        for (const server of [servers.developer, servers.agents]) {
          await new Promise<void>((resolve) => server.close(() => resolve()));
        }
        await new Promise<void>((resolve) => echo.close(() => resolve()));
        resolver?.close();
      },
    };
    await openSession().catch(() => undefined);
    return instance;
  },
};
