// The traffic manager's HTTP/2 endpoint (cleartext h2, reached only through a port-forward):
// health and version, sessions, one CONNECT stream per outbound TCP connection of a
// workstation, and DNS queries in RFC 8484 wire format forwarded to the cluster's resolver.
import dgram from 'node:dgram';
import http2 from 'node:http2';
import net from 'node:net';
import { DNS_MESSAGE_TYPE, MANAGER_PATHS, SESSION_TOKEN_HEADER } from '../protocol/paths.ts';
import { PROTOCOL_VERSION, TELEPOD_VERSION } from '../protocol/version.ts';
import { Sessions } from './sessions.ts';

export interface ManagerOptions {
  /** Where DNS queries go: the cluster resolver (from the pod's /etc/resolv.conf). */
  dnsServer: string;
  sessions?: Sessions;
}

function reply(stream: http2.ServerHttp2Stream, status: number, body: string | Buffer, type = 'text/plain') {
  if (stream.destroyed) return;
  stream.respond({ ':status': status, 'content-type': type });
  stream.end(body);
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

export function createManagerServer(options: ManagerOptions): http2.Http2Server {
  const sessions = options.sessions ?? new Sessions();
  const server = http2.createServer({ settings: { initialWindowSize: 8 << 20 } });
  server.on('session', (session) => session.setLocalWindowSize(64 << 20));
  server.on('stream', (stream, headers) => {
    const method = headers[':method'];
    const path = headers[':path'];
    if (method === 'CONNECT' || path === MANAGER_PATHS.dnsQuery || path === MANAGER_PATHS.lease) {
      const token = headers[SESSION_TOKEN_HEADER];
      if (!sessions.touch(typeof token === 'string' ? token : undefined))
        return reply(stream, 401, 'no session\n');
      if (method === 'CONNECT') return connectStream(stream, headers[':authority'] ?? '');
      if (path === MANAGER_PATHS.lease) return reply(stream, 200, 'renewed\n');
      return dnsQuery(stream, options.dnsServer);
    }
    if (path === MANAGER_PATHS.health) return reply(stream, 200, 'ok\n');
    if (path === MANAGER_PATHS.version) {
      return reply(
        stream,
        200,
        JSON.stringify({ version: TELEPOD_VERSION, protocol: PROTOCOL_VERSION }),
        'application/json',
      );
    }
    if (path === MANAGER_PATHS.sessions && method === 'POST') {
      return reply(stream, 200, JSON.stringify(sessions.open()), 'application/json');
    }
    reply(stream, 404, 'not found\n');
  });
  return server;
}
