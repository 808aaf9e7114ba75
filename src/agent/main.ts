// The agent: runs in an intercepted workload's pod (as a sidecar, or in place of the app
// container) from the in-cluster bundle. It listens on its ports; a connection to a port that a
// session intercepts whole goes to the manager as one HTTP/2 stream (and on to the
// workstation); on a port with personal intercepts or mirrors, each request is routed on its
// own (request-router.ts); any other connection goes to the app's own port in the pod,
// unchanged. On request it also serves the container's volume mounts over SFTP (sftp-server.ts).
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { Duplex } from 'node:stream';
import {
  AGENT_CONFIG_ENV,
  AGENT_PORT_HEADER,
  AGENT_INJECTION_HEADER,
  ROUTED_INTERCEPT_HEADER,
  AGENT_TOKEN_DIR,
  UNREPORTED_ENV,
  VOLUMES_HEADER,
  type AgentConfig,
  type AgentMessage,
  type AgentPort,
  type PortRoute,
} from '../protocol/intercept.ts';
import { AgentMessageSchema, type AgentHello } from '../protocol/requests.ts';
import { LISTEN_BACKLOG } from '../protocol/listen-backlog.ts';
import { keepAlive } from '../protocol/liveness.ts';
import { keepMemoryLean } from '../protocol/node-flags.ts';
import { MANAGER_PATHS, HTTP2_CONNECTION_WINDOW, HTTP2_SESSION_OPTIONS } from '../protocol/paths.ts';
import { ConnectionRoutes } from './connection-routes.ts';
import { RequestRouter } from './request-router.ts';
import { serveVolumes } from './sftp-server.ts';
import { drain } from './termination.ts';

keepMemoryLean();
const config = JSON.parse(process.env[AGENT_CONFIG_ENV] ?? '{}') as AgentConfig;
const log = (message: string) => process.stdout.write(`${new Date().toISOString()} ${message}\n`);
let manager: http2.ClientHttp2Session | undefined;
/** Ports intercepted whole, and each intercepted port's routes (agent port → routes in order). */
let intercepted = new Set<number>();
let routes = new Map<number, PortRoute[]>();
const routers = new Map<number, RequestRouter>();
let listening = false;

/**
 * How every stream to the manager proves it comes from this pod's agent: the injection's id and
 * the pod's projected service-account token, which the kubelet rotates (read again each minute).
 */
let credential: { headers: Record<string, string>; read: number } | undefined;
function agentHeaders(): Record<string, string> {
  if (!credential || Date.now() - credential.read > 60_000) {
    try {
      const token = readFileSync(`${AGENT_TOKEN_DIR}/token`, 'utf8').trim();
      const headers = { [AGENT_INJECTION_HEADER]: config.injection, authorization: `Bearer ${token}` };
      credential = { headers, read: Date.now() };
    } catch (err) {
      log(`cannot read the pod's token: ${(err as Error).message}`); // the manager will refuse
    }
  }
  return credential?.headers ?? { [AGENT_INJECTION_HEADER]: config.injection };
}

const connections = new ConnectionRoutes(() => manager, agentHeaders);

/** This container's environment, which the kubelet resolved from the app container's sources. */
function reportedEnv(): Record<string, string> {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      (entry): entry is [string, string] => entry[1] !== undefined && !UNREPORTED_ENV.has(entry[0]),
    ),
  );
}

/** A stream that fails at once (and swallows what is written first): where a routed request cannot go. */
function failed(reason: string): Duplex {
  const stream = new Duplex({ read: () => undefined, write: (_chunk, _encoding, done) => done() });
  process.nextTick(() => stream.destroy(new Error(reason)));
  return stream;
}

/** A stream through the manager to the workstation of intercept `id`, for one routed connection. */
function routedStream(port: AgentPort, id: string): Duplex {
  if (!manager || manager.destroyed || manager.closed) return failed('the traffic manager is not connected');
  let stream: http2.ClientHttp2Stream;
  try {
    stream = manager.request(
      {
        ':method': 'CONNECT',
        ':authority': `agent:${port.listen}`,
        ...agentHeaders(),
        [AGENT_PORT_HEADER]: String(port.listen),
        [ROUTED_INTERCEPT_HEADER]: id,
      },
      { endStream: false },
    );
  } catch (err) {
    return failed(`the traffic manager is going away: ${(err as Error).message}`);
  }
  stream.once('response', (headers) => {
    const status = headers[':status'];
    if (status !== 200) stream.destroy(new Error(`the traffic manager answered ${status}`));
  });
  return stream;
}

/** The router of a port with personal intercepts or mirrors (one per port, made on first use). */
function routerFor(port: AgentPort): RequestRouter {
  let router = routers.get(port.listen);
  if (!router) {
    router = new RequestRouter(
      () => routes.get(port.listen) ?? [],
      {
        app: () =>
          port.forward === undefined
            ? failed('the app does not listen here')
            : net.connect({ host: '127.0.0.1', port: port.forward, noDelay: true, allowHalfOpen: true }),
        workstation: (id) => routedStream(port, id),
      },
      log,
    );
    routers.set(port.listen, router);
  }
  return router;
}

/** Opens the stream the manager asked for and serves the volume mounts on it over SFTP. */
function openVolumes(session: http2.ClientHttp2Session, conn: string, mounts: string[]): void {
  const stream = session.request(
    {
      ':method': 'CONNECT',
      ':authority': 'agent:volumes',
      ...agentHeaders(),
      [VOLUMES_HEADER]: conn,
    },
    { endStream: false },
  );
  stream.on('error', (err: Error) => log(`volume stream: ${err.message}`));
  stream.once('response', (headers) => {
    if (headers[':status'] !== 200) return void stream.destroy();
    log(`serving volumes ${mounts.join(', ')}`);
    serveVolumes(stream, mounts);
  });
}

function parsedMessage(line: string): AgentMessage | undefined {
  try {
    const result = AgentMessageSchema.safeParse(JSON.parse(line));
    return result.success ? result.data : undefined;
  } catch {
    return undefined;
  }
}

function handle(session: http2.ClientHttp2Session, message: AgentMessage): void {
  if ('sftp' in message) return openVolumes(session, message.sftp, message.mounts);
  const before = new Set(routes.keys());
  const wholeBefore = intercepted;
  intercepted = new Set(message.intercepted);
  routes = new Map(Object.entries(message.routes ?? {}).map(([port, list]) => [Number(port), list]));
  // Ports intercepted now (whole or per request): the app's kept-alive connections move over.
  for (const port of routes.keys()) if (!before.has(port)) connections.app.handOver(port);
  for (const port of before) if (!routes.has(port)) connections.app.stop(port);
  // Ports no longer intercepted whole: the workstation's kept-alive connections come back.
  for (const port of wholeBefore) if (!intercepted.has(port)) connections.workstation.handOver(port);
  for (const port of intercepted) connections.workstation.stop(port);
  for (const [port, router] of routers) if (!routes.has(port)) router.close();
  const routed = [...routes.keys()].filter((port) => !intercepted.has(port));
  log(
    `intercepted ports: ${[...intercepted].join(', ') || 'none'}; routed per request: ${routed.join(', ') || 'none'}`,
  );
  manager = session;
  if (!listening) listen();
}

function route(socket: net.Socket, port: AgentPort): void {
  socket.setNoDelay(true);
  if (intercepted.has(port.listen)) connections.toWorkstation(socket, port);
  else if (routes.get(port.listen)?.length) routerFor(port).handle(socket);
  else connections.toApp(socket, port);
}

/** The agent's listeners: the health port and each agent port. */
const servers: net.Server[] = [];

function listen(): void {
  listening = true;
  servers.push(net.createServer((socket) => socket.end()).listen(config.health));
  for (const port of config.ports) {
    servers.push(
      net
        .createServer({ allowHalfOpen: true }, (socket) => route(socket, port))
        .listen({ port: port.listen, backlog: LISTEN_BACKLOG }, () =>
          log(`listening on :${port.listen}${port.forward ? ` (app on :${port.forward})` : ''}`),
        ),
    );
  }
}

/** How long a connection to the manager may take: a Service can still point at a deleted pod. */
const CONNECT_TIMEOUT_MS = 2_000;

/** Connects to the manager and follows the intercepted ports; reconnects when it drops. */
function connect(): void {
  const colon = config.manager.lastIndexOf(':');
  // Our own socket, so that a connection attempt stuck in SYN-SENT can be ended: destroying a
  // session that has not connected yet leaves its socket trying for a minute.
  const socket = net.connect({
    host: config.manager.slice(0, colon),
    port: Number(config.manager.slice(colon + 1)),
    noDelay: true,
  });
  const session = http2.connect(`http://${config.manager}`, {
    ...HTTP2_SESSION_OPTIONS,
    createConnection: () => socket,
  });
  session.on('error', (err: Error) => log(`manager connection: ${err.message}`));
  const connecting = setTimeout(() => {
    log(`manager connection: not connected within ${CONNECT_TIMEOUT_MS / 1000} s`);
    socket.destroy();
    session.destroy();
  }, CONNECT_TIMEOUT_MS);
  socket.once('connect', () => clearTimeout(connecting));
  session.once('connect', () => session.setLocalWindowSize(HTTP2_CONNECTION_WINDOW));
  keepAlive(session, 2_000, 3); // in the cluster: a dead manager is noticed within 6-8 s
  session.once('close', () => {
    clearTimeout(connecting);
    intercepted = new Set();
    routes = new Map();
    manager = undefined;
    setTimeout(connect, 500);
  });
  const watch = session.request({
    ':method': 'POST',
    ':path': MANAGER_PATHS.agentWatch,
    ...agentHeaders(),
  });
  watch.end(JSON.stringify({ env: reportedEnv() } satisfies AgentHello));
  let registered = false;
  watch.on('response', (headers) => {
    registered = headers[':status'] === 200;
    if (!registered) log(`the manager refused this agent (HTTP ${headers[':status']})`);
  });
  createInterface({ input: watch })
    .on('error', () => undefined) // the session's close reconnects
    .on('line', (line) => {
      if (!registered) return; // a refusal's body, not a message
      const message = parsedMessage(line);
      if (message) handle(session, message);
      else log('ignoring a malformed message from the manager');
    });
  watch.once('close', () => session.destroy());
}

connect();
process.once('SIGINT', () => process.exit(0));
process.once('SIGTERM', () => {
  log('terminating: serving until the Services have let go of this pod');
  drain(
    () => servers,
    () => process.exit(0),
  );
});
