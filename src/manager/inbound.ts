// Streams the manager pairs between a workstation and an agent, both of which only ever dial
// the manager:
// - inbound connections, cluster → workstation: an agent that accepts a connection on an
//   intercepted port opens a stream; the manager tells the owning session on its event stream,
//   the daemon connects to its local port and opens a stream naming the connection;
// - volume streams, workstation → pod: the daemon opens a stream naming its intercept; the
//   manager asks one of the workload's agents, on its watch stream, to open a stream that
//   serves the volumes over SFTP.
// Either way the manager splices the two. Agents also watch which of their ports are
// intercepted, so connections to other ports never leave the pod. While a cold intercept's
// rollout runs, the manager's own relays (relay.ts) take the place of the agents: a relayed TCP
// connection waits for the daemon's stream as an agent's stream does.
import { randomUUID } from 'node:crypto';
import http2 from 'node:http2';
import type net from 'node:net';
import { abort, endedCleanly, reset } from '../protocol/liveness.ts';
import type { AgentMessage, InboundEvent } from '../protocol/intercept.ts';
import type { AgentHello } from '../protocol/requests.ts';
import type { AgentOf } from './agent-pods.ts';
import type { Injection } from './injection-registry.ts';
import type { Intercepts } from './intercepts.ts';
import type { RelayRoute } from './relay.ts';
import { reply, splice } from './reply.ts';

/** How long a stream waits for its other half. */
const PICKUP_TIMEOUT_MS = 10_000;

/** One half of a connection, waiting for the stream that picks it up. */
interface Half {
  readonly gone: boolean;
  /** Answers `peer` (and this half, a stream) and splices the two. */
  join(peer: http2.ServerHttp2Stream): void;
  /** Nothing will pick it up: a stream is answered `status`, a socket reset. */
  fail(status: number, message: string): void;
  onClose(listener: () => void): void;
}

function streamHalf(stream: http2.ServerHttp2Stream): Half {
  return {
    get gone() {
      return stream.destroyed;
    },
    join(peer) {
      stream.respond({ ':status': 200 });
      peer.respond({ ':status': 200 });
      splice(stream, peer);
    },
    fail: (status, message) => reply(stream, status, `${message}\n`),
    onClose: (listener) => void stream.once('close', listener),
  };
}

/** A relayed connection: a reset on either side resets the other, as `splice` does for streams. */
function socketHalf(socket: net.Socket): Half {
  return {
    get gone() {
      return socket.destroyed;
    },
    join(peer) {
      peer.respond({ ':status': 200 });
      socket.pipe(peer);
      peer.pipe(socket);
      peer.once('close', () => endedCleanly(peer) || abort(socket));
      socket.once('close', (hadError) => hadError && reset(peer));
    },
    fail: () => abort(socket),
    onClose: (listener) => void socket.once('close', listener),
  };
}

interface Pending {
  half: Half;
  /** Who may pick it up: a session id, or an injection's id. */
  owner: string;
  timer: NodeJS.Timeout;
}

export class Inbound {
  private readonly eventStreams = new Map<string, http2.ServerHttp2Stream>();
  private readonly pending = new Map<string, Pending>();

  constructor(private readonly intercepts: Intercepts) {}

  /** The daemon's event stream; a newer one (after a reconnect) replaces the older. */
  events(stream: http2.ServerHttp2Stream, sessionId: string): void {
    stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson' });
    this.eventStreams.get(sessionId)?.close();
    this.eventStreams.set(sessionId, stream);
    stream.once('close', () => {
      if (this.eventStreams.get(sessionId) === stream) this.eventStreams.delete(sessionId);
    });
  }

  /**
   * Serves an agent's watch: learns its pod's context (env from the hello, mounts from the pod
   * check), sends the injection's current state, and keeps the stream among the injection's
   * agents until it closes.
   */
  agentWatch(
    stream: http2.ServerHttp2Stream,
    { injection, mounts }: AgentOf<Injection>,
    hello: AgentHello,
  ): void {
    this.intercepts.learnContext(injection, hello.env, mounts);
    stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson' });
    const agent = { send: (message: AgentMessage) => void stream.write(`${JSON.stringify(message)}\n`) };
    agent.send(this.intercepts.agentMessage(injection));
    injection.agents.add(agent);
    stream.once('close', () => injection.agents.delete(agent));
  }

  /** Keeps `stream` until its other half arrives under `conn`, for at most the pickup timeout. */
  private wait(conn: string, owner: string, half: Half, timeoutMessage: string): void {
    const timer = setTimeout(() => {
      this.pending.delete(conn);
      half.fail(504, timeoutMessage);
    }, PICKUP_TIMEOUT_MS);
    this.pending.set(conn, { half, owner, timer });
    half.onClose(() => {
      clearTimeout(timer);
      if (this.pending.get(conn)?.half === half) this.pending.delete(conn);
    });
  }

  private take(conn: string, owner: string): Pending | undefined {
    const pending = this.pending.get(conn);
    if (!pending || pending.owner !== owner) return undefined;
    this.pending.delete(conn);
    clearTimeout(pending.timer);
    return pending.half.gone ? undefined : pending;
  }

  /** Answers both halves and splices them; a half that is gone gets the other a 404. */
  private pair(conn: string, owner: string, stream: http2.ServerHttp2Stream, what: string): void {
    const pending = this.take(conn, owner);
    if (!pending) return reply(stream, 404, `no such ${what}\n`);
    pending.half.join(stream);
  }

  /** An agent's stream for a connection (or one routed request, naming `interceptId`) on `agentPort`. */
  agentConnect(
    stream: http2.ServerHttp2Stream,
    injection: Injection,
    agentPort: number,
    interceptId?: string,
  ): void {
    const active = this.intercepts.interceptOn(injection, agentPort, interceptId);
    if (!active) return reply(stream, 404, 'not intercepted\n');
    const events = this.eventStreams.get(active.sessionId);
    if (!events) return reply(stream, 503, 'the workstation is not connected\n');
    const local = active.info.ports.find((p) => p.agentPort === agentPort)!.local;
    this.announce(events, streamHalf(stream), {
      sessionId: active.sessionId,
      interceptId: active.info.id,
      local,
    });
  }

  /** A connection a relay accepted for `route` (relay.ts): the daemon picks it up as an agent's. */
  relayConnect(socket: net.Socket, route: RelayRoute): void {
    socket.on('error', () => undefined); // a reset by the client: 'close' cleans up
    const events = this.eventStreams.get(route.sessionId);
    if (!events) return abort(socket);
    this.announce(events, socketHalf(socket), route);
  }

  /** Tells the session's daemon of a connection for `route`, which waits for its stream. */
  private announce(events: http2.ServerHttp2Stream, half: Half, route: RelayRoute): void {
    const conn = randomUUID();
    this.wait(conn, route.sessionId, half, 'the workstation did not pick the connection up');
    const event: InboundEvent = { conn, intercept: route.interceptId, local: route.local };
    events.write(`${JSON.stringify(event)}\n`);
  }

  /** The daemon's stream for one inbound connection: spliced to the waiting agent stream. */
  daemonConnect(stream: http2.ServerHttp2Stream, sessionId: string, conn: string): void {
    this.pair(conn, sessionId, stream, 'inbound connection');
  }

  refused(sessionId: string, conn: string, reason: string): void {
    const pending = this.take(conn, sessionId);
    if (pending) pending.half.fail(502, reason);
  }

  /** The daemon's stream for an intercept's volumes: the first registered agent serves it. */
  daemonVolumes(stream: http2.ServerHttp2Stream, sessionId: string, interceptId: string): void {
    const injection = this.intercepts.injectionOf(interceptId, sessionId);
    const [agent] = injection.agents;
    if (!agent) return reply(stream, 503, 'no agent of this workload is connected\n');
    const conn = randomUUID();
    this.wait(conn, injection.id, streamHalf(stream), 'the agent did not open the volume stream');
    agent.send({ sftp: conn, mounts: injection.context?.mounts ?? [] });
  }

  /** An agent's stream that serves volumes, for the daemon stream waiting under `conn`. */
  agentVolumes(stream: http2.ServerHttp2Stream, injection: Injection, conn: string): void {
    this.pair(conn, injection.id, stream, 'volume stream');
  }
}
