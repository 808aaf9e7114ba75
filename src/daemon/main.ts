// The root daemon: owns every change telepod makes on the workstation and undoes it on quit,
// on SIGTERM/SIGINT, and (for a predecessor killed with -9) when it starts.
import { mkdirSync } from 'node:fs';
import { pino } from 'pino';
import {
  checkDaemonDir,
  daemonDir,
  daemonLog,
  DAEMON_PATHS,
  ConnectRequestSchema,
  ContextRequestSchema,
  DaemonInterceptRequestSchema,
  LeaveRequestSchema,
  ListRequestSchema,
  type DaemonStatus,
} from '../protocol/daemon-api.ts';
import { parseRequest } from '../protocol/requests.ts';
import { TelepodError } from '../protocol/errors.ts';
import { keepMemoryLean } from '../protocol/node-flags.ts';
import { startControlServer } from './control.ts';
import { daemonLogLevel, rotatingDestination } from './log-file.ts';
import { trimHeapPeriodically } from './heap-trim.ts';
import { Mounts } from './mounts.ts';
import { removeCapture } from './nft.ts';
import { Session } from './session.ts';

/**
 * The daemon's main. A rootless daemon runs as the user: it captures in a network namespace
 * of its own (rootless/namespace.ts) instead of the machine's, so it has no rules to remove.
 */
export async function runDaemon({ rootless = false } = {}): Promise<void> {
  const uid = process.getuid?.() ?? 0;
  if (!rootless && uid !== 0) throw new TelepodError('the telepod daemon must run as root');
  const dir = daemonDir(); // $TELEPOD_RUN_DIR: one daemon per directory (and network namespace)
  mkdirSync(dir, { recursive: true, mode: rootless ? 0o700 : 0o755 });
  checkDaemonDir(dir, rootless ? uid : 0);
  const log = pino(
    { level: daemonLogLevel(), base: { proc: 'daemon' } },
    rotatingDestination(daemonLog()).destination,
  );
  if (!rootless) await removeCapture(); // leftovers of a daemon that was killed
  await Mounts.clearLeftovers(log);
  keepMemoryLean();
  trimHeapPeriodically();
  let session: Session | undefined;
  let connecting: Promise<Session> | undefined;

  const connected = (): Session => {
    if (!session) throw new TelepodError('not connected: run `telepod connect` first');
    return session;
  };

  const shutdown = async () => {
    await session?.close().catch((err: Error) => log.error({ err: err.message }, 'cleanup failed'));
    if (!rootless) await removeCapture();
    await new Promise((resolve) => control.close(resolve)); // also unlinks the socket
    log.info('daemon stopped');
    log.flush();
    process.exit(0);
  };

  const control = await startControlServer({
    [DAEMON_PATHS.status]: () =>
      session?.status() ??
      Promise.resolve({ connected: false, daemonPid: process.pid } satisfies DaemonStatus),
    [DAEMON_PATHS.connect]: async (body, step) => {
      if (session) return session.status();
      connecting ??= Session.open(
        parseRequest(ConnectRequestSchema, body, 'connect request'),
        log,
        step,
        rootless,
      );
      try {
        session = await connecting;
        const status = await session.status();
        log.info(status, 'connected');
        return { ...status, notices: session.notices };
      } finally {
        connecting = undefined;
      }
    },
    [DAEMON_PATHS.intercept]: async (body, step) =>
      connected().intercept(parseRequest(DaemonInterceptRequestSchema, body, 'intercept request'), step),
    [DAEMON_PATHS.leave]: async (body) =>
      connected().leave(parseRequest(LeaveRequestSchema, body, 'leave request')),
    [DAEMON_PATHS.context]: async (body) =>
      connected().context(parseRequest(ContextRequestSchema, body, 'context request').id),
    [DAEMON_PATHS.list]: async (body) =>
      connected().list(parseRequest(ListRequestSchema, body ?? {}, 'list request').namespace),
    [DAEMON_PATHS.quit]: () => {
      setImmediate(() => void shutdown());
      return Promise.resolve({ quitting: true });
    },
  });
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(signal, () => void shutdown());
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'daemon failed; undoing its changes');
    void shutdown();
  });
  log.info({ pid: process.pid }, 'daemon started');
}
