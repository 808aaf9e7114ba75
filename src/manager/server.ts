// The traffic manager's two HTTP/2 endpoints (cleartext h2), kept apart because their callers
// are trusted differently (docs/security.md):
// - the developer API, bound to the pod's loopback and so reachable only through a
//   port-forward to the manager pod: health, version, sessions, one CONNECT stream per outbound
//   TCP connection, DNS queries in RFC 8484 wire format, intercept requests, inbound
//   connections and volume streams;
// - the agent API, behind the manager's Service: an agent's watch of its intercepted ports, one
//   stream per intercepted connection and the streams that serve volumes. Nothing else is served
//   there: a caller without an agent's credential gets 401.
// Every header and body is parsed before use; a bad one is a 4xx for that stream alone.
import dgram from 'node:dgram';
import http2 from 'node:http2';
import net from 'node:net';
import { TelepodError, usageError } from '../protocol/errors.ts';
import {
  AGENT_PORT_HEADER,
  ROUTED_INTERCEPT_HEADER,
  AGENT_INJECTION_HEADER,
  INBOUND_HEADER,
  VOLUMES_HEADER,
} from '../protocol/intercept.ts';
import {
  DNS_MESSAGE_TYPE,
  MANAGER_PATHS,
  SESSION_TOKEN_HEADER,
  HTTP2_CONNECTION_WINDOW,
  HTTP2_SESSION_OPTIONS,
} from '../protocol/paths.ts';
import {
  AgentHelloSchema,
  InboundRefusalSchema,
  InterceptRefSchema,
  LeaveInterceptSchema,
  RestoreDormantSchema,
  InterceptRequestSchema,
  SessionRequestSchema,
  parseRequest,
  uuid,
} from '../protocol/requests.ts';
import { abort, endedCleanly, keepAlive, reset } from '../protocol/liveness.ts';
import { PROTOCOL_VERSION, TELEPOD_VERSION, versionSkew } from '../protocol/version.ts';
import type { ClusterInfoSource } from './cluster-info.ts';
import { parseDestination } from './destinations.ts';
import { Inbound } from './inbound.ts';
import type { AgentOf } from './agent-pods.ts';
import type { Injection } from './injection-registry.ts';
import type { Intercepts } from './intercepts.ts';
import { readBody, readJson, reply, replyError, replyJson } from './reply.ts';
import { Sessions, type SessionRecord } from './sessions.ts';

export interface ManagerOptions {
  /** Where DNS queries go: the cluster resolver (from the pod's /etc/resolv.conf). */
  dnsServer: string;
  /** Subnets and namespaces for workstations; absent without Kubernetes API access. */
  clusterInfo?: ClusterInfoSource;
  sessions?: Sessions;
  /** Absent when the manager has no Kubernetes API access (unit tests): intercepts are refused. */
  intercepts?: Intercepts;
  /** Where agents' registrations and refusals are logged. */
  log?: (message: string) => void;
}

export interface ManagerServers {
  /** The developer API: listen on loopback only. */
  developer: http2.Http2Server;
  /** The agent API: listen on the pod's address (the Service's target port). */
  agents: http2.Http2Server;
}

const DNS_TIMEOUT_MS = 5000;

/** A daemon whose protocol differs from the manager's (HTTP 409), told what to run. */
class VersionSkew extends TelepodError {
  readonly status = 409;
}

function connectStream(stream: http2.ServerHttp2Stream, authority: string | undefined) {
  const { host, port } = parseDestination(authority);
  const socket = net.connect({ host, port, noDelay: true });
  socket.once('connect', () => {
    stream.respond({ ':status': 200 });
    socket.pipe(stream);
    stream.pipe(socket);
  });
  socket.once('error', (err) => {
    if (stream.headersSent) reset(stream);
    else reply(stream, 502, `${(err as NodeJS.ErrnoException).code ?? err.message}\n`);
  });
  // A stream cut short (its tunnel died) resets the connection: the server must not take it as complete.
  stream.once('close', () => (endedCleanly(stream) ? socket.destroy() : abort(socket)));
}

/** Forwards one wire-format query; only an answer from the server asked, with the query's id, counts. */
async function dnsQuery(stream: http2.ServerHttp2Stream, server: string) {
  const query = await readBody(stream, 65_535);
  if (query.length < 12) throw usageError('a DNS query is at least 12 bytes');
  const socket = dgram.createSocket(net.isIPv6(server) ? 'udp6' : 'udp4');
  socket.on('error', () => undefined); // the timeout answers
  const timer = setTimeout(() => {
    socket.close();
    reply(stream, 504, 'dns timeout\n');
  }, DNS_TIMEOUT_MS);
  socket.on('message', (answer) => {
    if (answer.length < 12 || answer.readUInt16BE(0) !== query.readUInt16BE(0)) return;
    clearTimeout(timer);
    socket.close();
    reply(stream, 200, answer, DNS_MESSAGE_TYPE);
  });
  // A connected socket drops datagrams from any other address.
  socket.connect(53, server, () => socket.send(query));
}

/** A stream or intercept id from a header: a uuid, else a usage error (400). */
function streamId(value: string | undefined): string {
  return parseRequest(uuid, value, 'stream id');
}

function header(headers: http2.IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

/** Runs a stream's handler; whatever it throws, now or later, answers that stream alone. */
function guarded(stream: http2.ServerHttp2Stream, handler: () => unknown): void {
  try {
    const result = handler();
    if (result instanceof Promise) result.catch((err: unknown) => replyError(stream, err));
  } catch (err) {
    replyError(stream, err);
  }
}

function serve(
  server: http2.Http2Server,
  handle: (s: http2.ServerHttp2Stream, h: http2.IncomingHttpHeaders) => unknown,
) {
  server.on('session', (session) => {
    session.on('error', () => undefined); // a broken connection; its streams close with it
    session.setLocalWindowSize(HTTP2_CONNECTION_WINDOW);
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined); // a reset by the peer; the stream's owner cleans up
    guarded(stream, () => handle(stream, headers));
  });
}

export function createManagerServers(options: ManagerOptions): ManagerServers {
  const sessions = options.sessions ?? new Sessions();
  const { intercepts } = options;
  const inbound = intercepts && new Inbound(intercepts);
  if (intercepts && inbound) {
    intercepts.relayTo((socket, route) => inbound.relayConnect(socket, route));
    sessions.onExpired = (session) =>
      void intercepts
        .endSession(session.id)
        .catch((err: Error) =>
          process.stderr.write(`restoring for session ${session.id} failed: ${err.message}\n`),
        );
  }

  /** Requests that need the cluster side (intercepts); answered with JSON or an error. */
  const clusterRequest = async (
    stream: http2.ServerHttp2Stream,
    work: (i: Intercepts, inb: Inbound) => Promise<unknown>,
  ) => {
    if (!intercepts || !inbound) return reply(stream, 503, 'this manager has no Kubernetes API access\n');
    replyJson(stream, (await work(intercepts, inbound)) ?? {});
  };

  const sessionStream = (
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    session: SessionRecord,
  ) => {
    if (headers[':method'] === 'CONNECT') {
      const conn = header(headers, INBOUND_HEADER);
      const volumesOf = header(headers, VOLUMES_HEADER);
      if (conn === undefined && volumesOf === undefined) return connectStream(stream, headers[':authority']);
      if (!inbound) return reply(stream, 404, 'no intercepts\n');
      if (conn !== undefined) return inbound.daemonConnect(stream, session.id, streamId(conn));
      return inbound.daemonVolumes(stream, session.id, streamId(volumesOf));
    }
    switch (headers[':path']) {
      case MANAGER_PATHS.lease:
        return reply(stream, 200, 'renewed\n');
      case MANAGER_PATHS.cluster:
        if (!options.clusterInfo) return reply(stream, 503, 'this manager has no Kubernetes API access\n');
        return options.clusterInfo.get().then((info) => replyJson(stream, info));
      case MANAGER_PATHS.dnsQuery:
        return dnsQuery(stream, options.dnsServer);
      case MANAGER_PATHS.sessionEnd:
        sessions.end(session.token);
        if (!intercepts) return reply(stream, 200, 'ended\n');
        return clusterRequest(stream, (i) => i.endSession(session.id));
      case MANAGER_PATHS.intercepts:
        return clusterRequest(stream, async (i) =>
          i.create(await readJson(stream, InterceptRequestSchema, 'intercept request'), session),
        );
      case MANAGER_PATHS.podContext:
        return clusterRequest(stream, async (i) =>
          i.context((await readJson(stream, InterceptRefSchema, 'context request')).id, session.id),
        );
      case MANAGER_PATHS.interceptHealth:
        return clusterRequest(stream, (i) => Promise.resolve(i.health(session.id)));
      case MANAGER_PATHS.leave:
        return clusterRequest(stream, async (i) => {
          const { id, restore } = await readJson(stream, LeaveInterceptSchema, 'leave request');
          return i.leave(id, session.id, restore === true);
        });
      case MANAGER_PATHS.restore:
        return clusterRequest(stream, async (i) => {
          const { namespace, workload } = await readJson(stream, RestoreDormantSchema, 'restore request');
          return { restored: await i.restoreDormant(namespace, workload, session.id) };
        });
      case MANAGER_PATHS.inboundEvents:
        return inbound ? inbound.events(stream, session.id) : reply(stream, 503, 'no intercepts\n');
      case MANAGER_PATHS.inboundRefused:
        return clusterRequest(stream, async (_, inb) => {
          const { conn, reason } = await readJson(stream, InboundRefusalSchema, 'refusal');
          inb.refused(session.id, conn, reason);
        });
    }
    reply(stream, 404, 'not found\n');
  };

  const developer = http2.createServer(HTTP2_SESSION_OPTIONS);
  serve(developer, (stream, headers) => {
    const path = headers[':path'];
    const token = header(headers, SESSION_TOKEN_HEADER);
    if (token !== undefined) {
      const session = sessions.touch(token);
      if (!session) return reply(stream, 401, 'no session\n');
      return sessionStream(stream, headers, session);
    }
    if (path === MANAGER_PATHS.health) return reply(stream, 200, 'ok\n');
    if (path === MANAGER_PATHS.version) {
      return replyJson(stream, { version: TELEPOD_VERSION, protocol: PROTOCOL_VERSION });
    }
    if (path === MANAGER_PATHS.sessions && headers[':method'] === 'POST') {
      return readJson(stream, SessionRequestSchema, 'session request').then(async (body) => {
        const skew = versionSkew(
          { version: body.version ?? 'unknown', protocol: body.protocol ?? 0 },
          { version: TELEPOD_VERSION, protocol: PROTOCOL_VERSION },
        );
        if (skew) throw new VersionSkew(skew);
        replyJson(stream, await sessions.open(body.holder, body.resumeToken));
      });
    }
    if (headers[':method'] === 'CONNECT' || path === MANAGER_PATHS.dnsQuery) {
      return reply(stream, 401, 'no session\n');
    }
    reply(stream, 404, 'not found\n');
  });
  developer.on('close', () => sessions.close());

  const agents = http2.createServer(HTTP2_SESSION_OPTIONS);
  // An agent gone without closing (its pod's network torn down) must not count as connected.
  agents.on('session', (session: http2.ServerHttp2Session) => keepAlive(session, 2_000, 3));
  const log = options.log ?? (() => undefined);
  serve(agents, async (stream, headers) => {
    if (!intercepts || !inbound) return reply(stream, 401, 'not an agent of a current intercept\n');
    const watch = headers[':path'] === MANAGER_PATHS.agentWatch;
    const agent = await intercepts
      .agentFor(header(headers, AGENT_INJECTION_HEADER), header(headers, 'authorization'))
      .catch((err: Error) => {
        if (watch) log(`refused an agent's watch: ${err.message}`);
        throw err;
      });
    if (watch) log(`agent of ${agent.injection.key} registering`);
    return agentStream(stream, headers, agent, inbound);
  });
  return { developer, agents };
}

function agentStream(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  agent: AgentOf<Injection>,
  inbound: Inbound,
) {
  const { injection } = agent;
  if (headers[':method'] === 'CONNECT') {
    const volumes = header(headers, VOLUMES_HEADER);
    if (volumes !== undefined) return inbound.agentVolumes(stream, injection, streamId(volumes));
    const port = Number(header(headers, AGENT_PORT_HEADER));
    if (!injection.agentPorts.some((p) => p.listen === port)) throw usageError('not a port of this agent');
    const routed = header(headers, ROUTED_INTERCEPT_HEADER);
    return inbound.agentConnect(stream, injection, port, routed === undefined ? undefined : streamId(routed));
  }
  if (headers[':path'] === MANAGER_PATHS.agentWatch && headers[':method'] === 'POST') {
    return readJson(stream, AgentHelloSchema, 'agent hello').then((hello) =>
      inbound.agentWatch(stream, agent, hello),
    );
  }
  reply(stream, 404, 'not found\n');
}
