// The outbound listener: every TCP connection the capture rules redirect here is carried to its
// original destination through one CONNECT stream of the tunnel, or, for a Service whose pods
// are known (`pods`), over a port-forward straight to one of them. In rootless mode every
// connection of the namespace arrives here; those not for the cluster are made directly from
// the machine's own network namespace (the internet, the LAN, the machine's loopback).
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { LISTEN_BACKLOG } from '../protocol/listen-backlog.ts';
import { abort, endedCleanly, reset } from '../protocol/liveness.ts';
import { pipeCoalesced } from './coalesced-pipe.ts';
import { relayThroughPod, type Unsent } from './pod-relay.ts';
import type { PodTarget } from './service-routes.ts';
import { bindGetsockopt, originalDestination } from './original-dst.ts';
import type { Tunnel } from './tunnel.ts';

interface Target {
  host: string;
  port: number;
}

/** Connections straight to pods (src/daemon/service-routes.ts, src/kube/pod-port-forwards.ts). */
export interface PodPath {
  /** The pod a connection to host:port may go to now; undefined: through the tunnel. */
  route(host: string, port: number): PodTarget | undefined;
  connect(target: PodTarget): Promise<Duplex>;
  /** A connection to `target` failed before the pod answered; it went through the tunnel. */
  failed(target: PodTarget, reason: Error): void;
}

export interface OutboundOptions {
  /** A listener made elsewhere (the rootless namespace's); by default one on 127.0.0.1. */
  server?: net.Server;
  /** Destinations to connect to directly rather than through the tunnel (default: none). */
  direct?: (host: string) => boolean;
  /** Cluster connections that may go straight to a pod (default: none). */
  pods?: PodPath;
}

function throughTunnel(
  socket: net.Socket,
  target: Target,
  tunnel: Tunnel,
  log: Logger,
  unsent?: Unsent,
): void {
  let opened: ReturnType<Tunnel['connect']>;
  try {
    opened = tunnel.connect(target.host, target.port);
  } catch (err) {
    log.debug({ target, err: (err as Error).message }, 'outbound connect failed');
    return void abort(socket);
  }
  const { stream, connected } = opened;
  // A stream cut short (the tunnel died) resets the client's connection: a transfer without a
  // length of its own must not look complete.
  stream.on('error', (err: NodeJS.ErrnoException) => {
    log.debug({ target, err: err.code ?? err.message }, 'outbound stream failed');
    abort(socket);
  });
  stream.once('close', () => {
    if (!endedCleanly(stream)) abort(socket);
  });
  // A client that resets its connection resets the stream: the server must not take it as ended.
  socket.once('error', () => reset(stream));
  // What a failed port-forward had taken from the client goes first.
  for (const chunk of unsent?.chunks ?? []) stream.write(chunk);
  if (unsent?.ended) stream.end();
  else socket.pipe(stream); // the request goes out now, not after the manager has connected
  connected.then(
    () => pipeCoalesced(stream, socket),
    (err: Error) => {
      log.debug({ target, err: err.message }, 'outbound connect failed');
      abort(socket);
    },
  );
}

function directly(socket: net.Socket, target: Target, log: Logger): void {
  const peer = net.connect({ ...target, noDelay: true, allowHalfOpen: true });
  // A refused or reset peer resets the client, as it would have without telepod.
  peer.on('error', (err) => {
    log.debug({ target, err: err.message }, 'direct connect failed');
    abort(socket);
  });
  socket.on('error', () => abort(peer));
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
    if (direct(target.host)) return directly(socket, target, log);
    const pod = options.pods?.route(target.host, target.port);
    if (!pod) return throughTunnel(socket, target, tunnel(), log);
    relayThroughPod(socket, options.pods!.connect(pod), (unsent, reason) => {
      options.pods!.failed(pod, reason);
      log.debug({ target, pod, err: reason.message }, 'port-forward to the pod failed; through the tunnel');
      throughTunnel(socket, target, tunnel(), log, unsent);
    });
  });
  if (!options.server)
    await new Promise<void>((resolve) =>
      server.listen({ port: 0, host: '127.0.0.1', backlog: LISTEN_BACKLOG }, resolve),
    );
  return server;
}
