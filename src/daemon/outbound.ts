// The outbound listener: every TCP connection the capture rules redirect here is carried to its
// original destination through one CONNECT stream of the tunnel. In rootless mode every
// connection of the namespace arrives here; those not for the cluster are made directly from
// the machine's own network namespace (the internet, the LAN, the machine's loopback).
import net from 'node:net';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { LISTEN_BACKLOG } from '../protocol/listen-backlog.ts';
import { endedCleanly } from '../protocol/liveness.ts';
import { bindGetsockopt, originalDestination } from './original-dst.ts';
import type { Tunnel } from './tunnel.ts';

interface Target {
  host: string;
  port: number;
}

export interface OutboundOptions {
  /** A listener made elsewhere (the rootless namespace's); by default one on 127.0.0.1. */
  server?: net.Server;
  /** Destinations to connect to directly rather than through the tunnel (default: none). */
  direct?: (host: string) => boolean;
}

/**
 * `source.pipe(socket)`, with the pieces that arrive in one go written together: the tunnel
 * hands over each piece of a frame as it arrives (often under 16 KiB), and a write per piece
 * was the daemon's largest cost in a download (57 % of its CPU, writes of 9.5 KB on average).
 */
function pipeCoalesced(source: Readable, socket: net.Socket): void {
  let corked = false;
  source.on('data', () => {
    if (corked) return;
    corked = true;
    socket.cork();
    process.nextTick(() => {
      corked = false;
      socket.uncork();
    });
  });
  source.pipe(socket);
}

function throughTunnel(socket: net.Socket, target: Target, tunnel: Tunnel, log: Logger): void {
  let opened: ReturnType<Tunnel['connect']>;
  try {
    opened = tunnel.connect(target.host, target.port);
  } catch (err) {
    log.debug({ target, err: (err as Error).message }, 'outbound connect failed');
    return void socket.resetAndDestroy();
  }
  const { stream, connected } = opened;
  // A stream cut short (the tunnel died) resets the client's connection: a transfer without a
  // length of its own must not look complete.
  stream.on('error', (err: NodeJS.ErrnoException) => {
    log.debug({ target, err: err.code ?? err.message }, 'outbound stream failed');
    socket.resetAndDestroy();
  });
  stream.once('close', () => {
    if (!endedCleanly(stream)) socket.resetAndDestroy();
  });
  socket.pipe(stream); // the request goes out now, not after the manager has connected
  connected.then(
    () => pipeCoalesced(stream, socket),
    (err: Error) => {
      log.debug({ target, err: err.message }, 'outbound connect failed');
      socket.resetAndDestroy();
    },
  );
}

function directly(socket: net.Socket, target: Target, log: Logger): void {
  const peer = net.connect({ ...target, noDelay: true, allowHalfOpen: true });
  // A refused or reset peer resets the client, as it would have without telepod.
  peer.on('error', (err) => {
    log.debug({ target, err: err.message }, 'direct connect failed');
    socket.resetAndDestroy();
  });
  socket.on('error', () => peer.resetAndDestroy());
  socket.pipe(peer);
  peer.pipe(socket);
}

export async function startOutboundListener(
  tunnel: () => Tunnel,
  log: Logger,
  options: OutboundOptions = {},
): Promise<net.Server> {
  bindGetsockopt(); // a missing native add-on fails connect, not each connection
  const direct = options.direct ?? (() => false);
  const server = options.server ?? net.createServer({ noDelay: true });
  // A handed-over listener does not carry its options: a client's FIN must not end the reply.
  if (options.server) (server as net.Server & { allowHalfOpen: boolean }).allowHalfOpen = true;
  server.on('connection', (socket: net.Socket) => {
    socket.on('error', () => socket.destroy());
    socket.setNoDelay(true);
    let target: Target;
    try {
      target = originalDestination(socket);
    } catch (err) {
      log.warn({ err }, 'dropping a connection without an original destination');
      socket.destroy();
      return;
    }
    if (direct(target.host)) directly(socket, target, log);
    else throughTunnel(socket, target, tunnel(), log);
  });
  if (!options.server)
    await new Promise<void>((resolve) =>
      server.listen({ port: 0, host: '127.0.0.1', backlog: LISTEN_BACKLOG }, resolve),
    );
  return server;
}
