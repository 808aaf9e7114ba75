// The rootless daemon's network namespace: starts the holder (holder.ts) in a new user and
// network namespace, receives its TCP listener and DNS socket, connects to the namespace's
// loopback through it, and tells it every second which loopback ports the machine listens on.
// The namespace ends with the holder, which ends with this daemon (also after a kill -9: its
// channel closes); nothing of it outlives them.
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import type { Logger } from 'pino';
import { TelepodError } from '../../protocol/errors.ts';
import { listeningPorts } from './listening-ports.ts';
import { FromHolderSchema, type ToHolder } from './messages.ts';

const START_TIMEOUT_MS = 15_000;
const CONNECT_TIMEOUT_MS = 10_000;
const HOST_PORTS_EVERY_MS = 1_000;

/** The namespace, as the daemon uses it. */
export interface Namespace {
  /** The holder's pid: `nsenter -t <pid> --user --net` runs a program in the namespace. */
  pid: number;
  /** Accepts every TCP connection made in the namespace (SO_ORIGINAL_DST says where it was going). */
  tcp: net.Server;
  /** Receives every DNS query made in the namespace. */
  dns: dgram.Socket;
  /** A connection to `port` on the namespace's loopback (where the user's command listens). */
  connect(port: number): Promise<net.Socket>;
  close(): void;
}

type Handle = net.Server | net.Socket | dgram.Socket;

/**
 * The command that starts the holder in a new user and network namespace: by default this same
 * executable's hidden `__netns-holder` (tests give the holder's source instead).
 */
export function holderCommand(program = [process.execPath, process.argv[1]!, '__netns-holder']): string[] {
  return [
    'unshare',
    '--user',
    '--map-current-user',
    '--net',
    '--keep-caps',
    '--kill-child',
    '--',
    ...program,
  ];
}

/** Starts the holder (`command`: tests start it from source) and receives its sockets. */
export async function openNamespace(log: Logger, command = holderCommand()): Promise<Namespace> {
  const [file, ...args] = command;
  const holder = spawn(file!, args, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  // e.g. EPIPE on a send to a holder that just died: its exit says the rest.
  holder.on('error', (err) => log.warn({ err: err.message }, 'namespace holder'));
  let stderr = ''; // kept until it started, for the error; logged after that
  let starting = true;
  holder.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    if (starting) stderr += chunk;
    else log.debug({ holder: chunk.trim() }, 'namespace holder');
  });
  const pending = new Map<number, { resolve: (s: net.Socket) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let tcp: net.Server | undefined;
  const started = new Promise<{ pid: number; dns: dgram.Socket }>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('the namespace holder did not start within 15 s')),
      START_TIMEOUT_MS,
    );
    holder.once('exit', (code) => {
      clearTimeout(timer);
      reject(
        new TelepodError(
          `cannot make a network namespace: ${stderr.trim() || `unshare exited with ${code}`}`,
        ),
      );
    });
    holder.on('message', (raw: unknown, handle?: Handle) => {
      const parsed = FromHolderSchema.safeParse(raw);
      const message = parsed.success ? parsed.data : undefined;
      // Each kind carries its own type of handle or none; anything else is let go at once.
      if (message?.kind === 'tcp' && handle instanceof net.Server) {
        tcp = handle;
      } else if (message?.kind === 'dns' && handle instanceof dgram.Socket) {
        clearTimeout(timer);
        if (tcp) resolve({ pid: message.pid, dns: handle });
        else reject(new TelepodError('the network namespace came without its TCP listener'));
      } else if (message?.kind === 'failed') {
        clearTimeout(timer);
        reject(new TelepodError(`cannot set up the network namespace: ${message.error}`));
      } else if (message?.kind === 'connected' && handle instanceof net.Socket && pending.has(message.id)) {
        // A reset may come before the caller listens: never an uncaught error in the daemon.
        handle.on('error', () => handle.destroy());
        pending.get(message.id)!.resolve(handle);
        pending.delete(message.id);
      } else if (message?.kind === 'connected' || message?.kind === 'connect-failed') {
        // connect-failed; or connected without a socket (reset while queued), or too late
        const error = message.kind === 'connect-failed' ? message.error : 'the connection ended at once';
        pending.get(message.id)?.reject(new Error(error));
        pending.delete(message.id);
        closeHandle(handle);
      } else {
        closeHandle(handle);
      }
    });
  });
  let opened: { pid: number; dns: dgram.Socket };
  try {
    opened = await started;
  } catch (err) {
    holder.kill();
    tcp?.close();
    throw err;
  }
  starting = false;
  stderr = '';
  const tell = (message: ToHolder) => {
    if (holder.connected) holder.send(message, undefined, undefined, () => undefined);
  };
  const scan = setInterval(() => {
    void listeningPorts().then((ports) => tell({ kind: 'host-ports', ports }));
  }, HOST_PORTS_EVERY_MS);
  void listeningPorts().then((ports) => tell({ kind: 'host-ports', ports }));
  holder.on('exit', (code) => {
    clearInterval(scan);
    log.warn({ code }, 'namespace holder exited');
    for (const { reject } of pending.values()) reject(new Error('the namespace holder exited'));
    pending.clear();
  });
  return {
    pid: opened.pid,
    tcp: tcp!,
    dns: opened.dns,
    connect(port) {
      if (!holder.connected) return Promise.reject(new Error('the namespace holder has exited'));
      const id = nextId++;
      return new Promise<net.Socket>((resolve, reject) => {
        const timer = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`no answer from the namespace within ${CONNECT_TIMEOUT_MS / 1000} s`));
        }, CONNECT_TIMEOUT_MS);
        const settle =
          <T>(f: (v: T) => void) =>
          (v: T) => {
            clearTimeout(timer);
            f(v);
          };
        pending.set(id, { resolve: settle(resolve), reject: settle(reject) });
        tell({ kind: 'connect', id, port });
      });
    },
    close() {
      clearInterval(scan);
      stop(holder);
      // The daemon's descriptors keep the namespace (its table, its veth) alive: let them go.
      closeHandle(tcp);
      closeHandle(opened.dns);
    },
  };
}

function closeHandle(handle: Handle | undefined): void {
  try {
    if (handle instanceof net.Socket) handle.destroy();
    else handle?.close();
  } catch {
    // already closed
  }
}

function stop(holder: ChildProcess): void {
  if (holder.connected) holder.disconnect(); // the holder exits when its channel closes
  holder.kill();
}
