// Inbound connections, cluster → workstation. An agent that accepts a connection on an
// intercepted port opens a stream to the manager; the manager tells the owning session on its
// event stream, the daemon connects to its local port and opens a stream naming the
// connection, and the manager splices the two. Agents also watch which of their ports are
// intercepted, so connections to other ports never leave the pod.
import { randomUUID } from 'node:crypto';
import type http2 from 'node:http2';
import type { AgentHello, InboundEvent } from '../protocol/intercept.ts';
import type { Injection, Intercepts } from './intercepts.ts';
import { readJson, reply, splice } from './reply.ts';

/** How long a cluster connection waits for the workstation to pick it up. */
const PICKUP_TIMEOUT_MS = 10_000;

interface Pending {
  agent: http2.ServerHttp2Stream;
  sessionId: string;
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

  async agentWatch(stream: http2.ServerHttp2Stream, injection: Injection): Promise<void> {
    const hello = await readJson<AgentHello>(stream);
    injection.env ??= hello.env ?? {};
    stream.respond({ ':status': 200, 'content-type': 'application/x-ndjson' });
    const tell = (intercepted: number[]) => stream.write(`${JSON.stringify({ intercepted })}\n`);
    tell(this.intercepts.interceptedPorts(injection));
    injection.agents.add(tell);
    stream.once('close', () => injection.agents.delete(tell));
  }

  agentConnect(stream: http2.ServerHttp2Stream, injection: Injection, agentPort: number): void {
    const active = this.intercepts.interceptOn(injection, agentPort);
    if (!active) return reply(stream, 404, 'not intercepted\n');
    const events = this.eventStreams.get(active.sessionId);
    if (!events) return reply(stream, 503, 'the workstation is not connected\n');
    const conn = randomUUID();
    const timer = setTimeout(() => {
      this.pending.delete(conn);
      reply(stream, 504, 'the workstation did not pick the connection up\n');
    }, PICKUP_TIMEOUT_MS);
    this.pending.set(conn, { agent: stream, sessionId: active.sessionId, timer });
    stream.once('close', () => {
      clearTimeout(timer);
      this.pending.delete(conn);
    });
    const local = active.info.ports.find((p) => p.agentPort === agentPort)!.local;
    events.write(`${JSON.stringify({ conn, intercept: active.info.id, local } satisfies InboundEvent)}\n`);
  }

  private take(conn: string, sessionId: string): Pending | undefined {
    const pending = this.pending.get(conn);
    if (!pending || pending.sessionId !== sessionId) return undefined;
    this.pending.delete(conn);
    clearTimeout(pending.timer);
    return pending;
  }

  /** The daemon's stream for one inbound connection: spliced to the waiting agent stream. */
  daemonConnect(stream: http2.ServerHttp2Stream, sessionId: string, conn: string): void {
    const pending = this.take(conn, sessionId);
    if (!pending || pending.agent.destroyed) return reply(stream, 404, 'no such inbound connection\n');
    pending.agent.respond({ ':status': 200 });
    stream.respond({ ':status': 200 });
    splice(pending.agent, stream);
  }

  refused(sessionId: string, conn: string, reason: string): void {
    const pending = this.take(conn, sessionId);
    if (pending) reply(pending.agent, 502, `${reason}\n`);
  }
}
