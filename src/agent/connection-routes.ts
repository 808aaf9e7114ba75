// Where the agent sends a connection on a port it does not route request by request: to the
// app's own port in the pod, or — when a session intercepts the port whole — through the manager
// to the workstation, as one HTTP/2 stream. A manager that answers 404 or 401 (the intercept
// ended, or the workload is being restored, a moment ago) or that is going away hands the
// connection to the app instead; only a failure resets the client.
import http2 from 'node:http2';
import net from 'node:net';
import { AGENT_PORT_HEADER, type AgentPort } from '../protocol/intercept.ts';
import { abort, endedCleanly, reset } from '../protocol/liveness.ts';
import { HandedConnections } from './handed-connections.ts';

/** Sends connections to the app or the workstation, and follows them for their handover. */
export class ConnectionRoutes {
  /** Connections the app serves, per agent port. */
  readonly app = new HandedConnections();
  /** Connections sent to the workstation: handed back to the app when their port's intercept ends. */
  readonly workstation = new HandedConnections();

  constructor(
    /** The session to the manager, when connected. */
    private readonly manager: () => http2.ClientHttp2Session | undefined,
    /** The headers proving a stream comes from this pod's agent. */
    private readonly agentHeaders: () => Record<string, string>,
  ) {}

  /** The app's own port serves `socket`; without one (the agent replaced the app) it is reset. */
  toApp(socket: net.Socket, port: AgentPort): void {
    if (port.forward === undefined) return void abort(socket);
    const app = net.connect({ host: '127.0.0.1', port: port.forward, noDelay: true, allowHalfOpen: true });
    app.once('connect', () => {
      socket.pipe(app);
      app.pipe(socket);
      this.app.add(port.listen, socket, app);
    });
    app.once('error', () => abort(socket));
    socket.once('error', () => abort(app));
    socket.once('close', () => app.destroy());
  }

  /** The workstation serves `socket` through the manager; the app does if the port is no longer intercepted. */
  toWorkstation(socket: net.Socket, port: AgentPort): void {
    const manager = this.manager();
    // A session closing (the manager's GOAWAY) takes no new stream: request() would throw.
    if (!manager || manager.destroyed || manager.closed) return this.toApp(socket, port);
    let stream: http2.ClientHttp2Stream;
    try {
      stream = manager.request(
        {
          ':method': 'CONNECT',
          ':authority': `agent:${port.listen}`,
          ...this.agentHeaders(),
          [AGENT_PORT_HEADER]: String(port.listen),
        },
        { endStream: false },
      );
    } catch {
      return this.toApp(socket, port);
    }
    // A stream cut short resets the client: its answer must not look complete.
    const resetIfCut = () => {
      if (!endedCleanly(stream)) abort(socket);
    };
    stream.once('close', resetIfCut);
    stream.once('error', () => abort(socket));
    socket.once('error', () => reset(stream));
    stream.once('response', (headers) => {
      const status = headers[':status'];
      if (status === 200) {
        socket.pipe(stream);
        stream.pipe(socket);
        this.workstation.add(port.listen, socket, stream);
        return;
      }
      // Not (or no longer) intercepted — 401 while a restore forgets this agent's injection —
      // the app serves it; refused by the workstation: reset.
      if (status === 404 || status === 401) {
        stream.off('close', resetIfCut);
        stream.destroy();
        return this.toApp(socket, port);
      }
      stream.destroy();
      abort(socket);
    });
  }
}
