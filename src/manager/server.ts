// The traffic manager's HTTP/2 endpoint (cleartext h2): for daemons (through a port-forward)
// health, version, sessions, one CONNECT stream per outbound TCP connection, DNS queries in
// RFC 8484 wire format, intercept requests, inbound connections and volume streams; for agents
// (in the cluster) the watch of intercepted ports, one stream per intercepted connection and
// the streams that serve volumes.
import dgram from 'node:dgram';
import http2 from 'node:http2';
import net from 'node:net';
import {
  AGENT_PORT_HEADER,
  AGENT_TOKEN_HEADER,
  INBOUND_HEADER,
  VOLUMES_HEADER,
  type InterceptRequest,
} from '../protocol/intercept.ts';
import {
  DNS_MESSAGE_TYPE,
  MANAGER_PATHS,
  SESSION_TOKEN_HEADER,
  type SessionRequest,
  HTTP2_CONNECTION_WINDOW,
  HTTP2_SETTINGS,
} from '../protocol/paths.ts';
import { PROTOCOL_VERSION, TELEPOD_VERSION } from '../protocol/version.ts';
import { Inbound } from './inbound.ts';
import type { Intercepts } from './intercepts.ts';
import { readJson, reply, replyError, replyJson } from './reply.ts';
import { Sessions, type SessionRecord } from './sessions.ts';

export interface ManagerOptions {
  /** Where DNS queries go: the cluster resolver (from the pod's /etc/resolv.conf). */
  dnsServer: string;
  sessions?: Sessions;
  /** Absent when the manager has no Kubernetes API access (unit tests): intercepts are refused. */
  intercepts?: Intercepts;
}

function connectStream(stream: http2.ServerHttp2Stream, authority: string) {
  const { hostname, port } = new URL(`tcp://${authority}`);
  const socket = net.connect({ host: hostname.replace(/^\[|\]$/g, ''), port: Number(port), noDelay: true });
  socket.once('connect', () => {
    stream.respond({ ':status': 200 });
    socket.pipe(stream);
    stream.pipe(socket);
  });
  socket.once('error', (err) => {
    if (stream.headersSent) stream.close(http2.constants.NGHTTP2_CONNECT_ERROR);
    else reply(stream, 502, `${(err as NodeJS.ErrnoException).code ?? err.message}\n`);
  });
  stream.once('close', () => socket.destroy());
}

function dnsQuery(stream: http2.ServerHttp2Stream, server: string) {
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  stream.once('end', () => {
    const socket = dgram.createSocket(server.includes(':') ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      socket.close();
      reply(stream, 504, 'dns timeout\n');
    }, 5000);
    socket.once('message', (answer) => {
      clearTimeout(timer);
      socket.close();
      reply(stream, 200, answer, DNS_MESSAGE_TYPE);
    });
    socket.send(Buffer.concat(chunks), 53, server);
  });
}

function header(headers: http2.IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return typeof value === 'string' ? value : undefined;
}

export function createManagerServer(options: ManagerOptions): http2.Http2Server {
  const sessions = options.sessions ?? new Sessions();
  const { intercepts } = options;
  const inbound = intercepts && new Inbound(intercepts);
  if (intercepts) {
    sessions.onExpired = (session) =>
      void intercepts
        .endSession(session.id)
        .catch((err: Error) =>
          process.stderr.write(`restoring for session ${session.id} failed: ${err.message}\n`),
        );
  }
  const server = http2.createServer({ settings: HTTP2_SETTINGS });
  server.on('session', (session) => session.setLocalWindowSize(HTTP2_CONNECTION_WINDOW));

  /** Requests that need the cluster side (intercepts); answered with JSON or an error. */
  const clusterRequest = (
    stream: http2.ServerHttp2Stream,
    work: (i: Intercepts, inb: Inbound) => Promise<unknown>,
  ) => {
    if (!intercepts || !inbound) return reply(stream, 503, 'this manager has no Kubernetes API access\n');
    work(intercepts, inbound).then(
      (value) => replyJson(stream, value ?? {}),
      (err: unknown) => replyError(stream, err),
    );
  };

  const sessionStream = (
    stream: http2.ServerHttp2Stream,
    headers: http2.IncomingHttpHeaders,
    session: SessionRecord,
  ) => {
    const method = headers[':method'];
    const path = headers[':path'];
    if (method === 'CONNECT') {
      const conn = header(headers, INBOUND_HEADER);
      const volumesOf = header(headers, VOLUMES_HEADER);
      if (!conn && !volumesOf) return connectStream(stream, headers[':authority'] ?? '');
      if (!inbound) return reply(stream, 404, 'no intercepts\n');
      if (conn) return inbound.daemonConnect(stream, session.id, conn);
      try {
        return inbound.daemonVolumes(stream, session.id, volumesOf!);
      } catch (err) {
        return replyError(stream, err);
      }
    }
    switch (path) {
      case MANAGER_PATHS.lease:
        return reply(stream, 200, 'renewed\n');
      case MANAGER_PATHS.dnsQuery:
        return dnsQuery(stream, options.dnsServer);
      case MANAGER_PATHS.sessionEnd:
        sessions.end(header(headers, SESSION_TOKEN_HEADER)!);
        if (!intercepts) return reply(stream, 200, 'ended\n');
        return clusterRequest(stream, (i) => i.endSession(session.id));
      case MANAGER_PATHS.intercepts:
        return clusterRequest(stream, async (i) =>
          i.create(await readJson<InterceptRequest>(stream), session),
        );
      case MANAGER_PATHS.podContext:
        return clusterRequest(stream, async (i) =>
          i.context((await readJson<{ id: string }>(stream)).id, session.id),
        );
      case MANAGER_PATHS.leave:
        return clusterRequest(stream, async (i) => ({
          left: await i.leave((await readJson<{ id: string }>(stream)).id, session.id),
        }));
      case MANAGER_PATHS.workloads:
        return clusterRequest(stream, async (i) =>
          i.list((await readJson<{ namespace: string }>(stream)).namespace),
        );
      case MANAGER_PATHS.inboundEvents:
        return inbound ? inbound.events(stream, session.id) : reply(stream, 503, 'no intercepts\n');
      case MANAGER_PATHS.inboundRefused:
        return clusterRequest(stream, async (_, inb) => {
          const { conn, reason } = await readJson<{ conn: string; reason: string }>(stream);
          inb.refused(session.id, conn, reason);
        });
    }
    reply(stream, 404, 'not found\n');
  };

  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined); // a reset by the peer; the stream's owner cleans up
    const path = headers[':path'];
    const agentToken = header(headers, AGENT_TOKEN_HEADER);
    if (agentToken !== undefined) {
      const injection = intercepts?.agentByToken(agentToken);
      if (!injection || !inbound) return reply(stream, 401, 'unknown agent\n');
      if (headers[':method'] === 'CONNECT') {
        const volumes = header(headers, VOLUMES_HEADER);
        if (volumes) return inbound.agentVolumes(stream, injection, volumes);
        return inbound.agentConnect(stream, injection, Number(header(headers, AGENT_PORT_HEADER)));
      }
      if (path === MANAGER_PATHS.agentWatch) {
        return void inbound.agentWatch(stream, injection).catch((err: unknown) => replyError(stream, err));
      }
      return reply(stream, 404, 'not found\n');
    }
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
      return void readJson<SessionRequest>(stream).then((body) =>
        replyJson(stream, sessions.open(body.holder ?? 'unknown', body.resumeToken)),
      );
    }
    if (headers[':method'] === 'CONNECT' || path === MANAGER_PATHS.dnsQuery)
      return reply(stream, 401, 'no session\n');
    reply(stream, 404, 'not found\n');
  });
  server.on('close', () => sessions.close());
  return server;
}
