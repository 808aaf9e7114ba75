// The rootless daemon's namespace holder: started by the daemon as
// `unshare --user --map-current-user --net --keep-caps … telepod __netns-holder`, it lives in the
// new user and network namespace with the capabilities the user has there. It brings up
// loopback and a default route, installs the capture table (ruleset.ts), and hands its TCP
// listener and DNS socket to the daemon, which serves them from the machine's namespace. It
// connects to the namespace's loopback for the daemon (intercepts) and keeps the set of the
// machine's loopback ports current. It ends when the daemon does (its channel closes).
import { spawn } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { LISTEN_BACKLOG } from '../../protocol/listen-backlog.ts';
import { listeningPorts } from './listening-ports.ts';
import { ToHolderSchema, type FromHolder } from './messages.ts';
import { HOLDER_SOURCE, hostPortsUpdate, namespaceRuleset } from './ruleset.ts';

/** A link for the default route, so that connect() to any address gets as far as the nat hook. */
const LINK = 'telepod0';
const LINK_ADDRESS = '198.18.255.1/32'; // benchmarking range (RFC 2544): never a real peer

async function command(file: string, args: string[], input?: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${file} ${args.join(' ')}: ${stderr.trim()}`)),
    );
    child.stdin.end(input);
  });
}

async function setUpLinks(): Promise<void> {
  await command('ip', ['link', 'set', 'lo', 'up']);
  await command('ip', ['link', 'add', LINK, 'type', 'veth', 'peer', 'name', `${LINK}p`]);
  await command('ip', ['link', 'set', `${LINK}p`, 'up']);
  await command('ip', ['link', 'set', LINK, 'up']);
  await command('ip', ['addr', 'add', LINK_ADDRESS, 'dev', LINK]);
  await command('ip', ['route', 'add', 'default', 'dev', LINK]);
}

function send(message: FromHolder, handle?: net.Server | net.Socket | dgram.Socket): Promise<void> {
  return new Promise((resolve, reject) =>
    process.send!(message, handle as net.Server, undefined, (err: Error | null) =>
      err ? reject(err) : resolve(),
    ),
  );
}

/** Keeps the set of the machine's loopback ports, minus those the namespace listens on itself. */
function hostPortsKeeper(): (ports: number[]) => void {
  let applied = '';
  let latest: number[] = [];
  let running = false;
  const apply = async () => {
    running = true;
    try {
      const own = new Set(await listeningPorts());
      const ports = latest.filter((p) => !own.has(p));
      const key = ports.join(',');
      if (key !== applied) {
        await command('nft', ['-f', '-'], hostPortsUpdate(ports));
        applied = key;
      }
    } finally {
      running = false;
    }
  };
  return (ports) => {
    latest = ports;
    if (!running)
      void apply().catch((err: Error) => process.stderr.write(`telepod holder: ${err.message}\n`));
  };
}

function connectInside(id: number, port: number): void {
  // From its own address, which the table never redirects: an intercept's connection reaches
  // the namespace's server, never the machine's port of the same number.
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: HOLDER_SOURCE, noDelay: true });
  // Not read here: what the server sends first (an HTTP/2 or SMTP greeting) stays in the kernel
  // for the daemon, however long the handle waits in the channel's queue.
  socket.pause();
  socket.once(
    'error',
    (err) => void send({ kind: 'connect-failed', id, error: err.message }).catch(() => undefined),
  );
  socket.once('connect', () => {
    socket.removeAllListeners('error');
    socket.on('error', () => undefined);
    void send({ kind: 'connected', id }, socket)
      .catch(() => undefined)
      .finally(() => socket.destroy()); // the daemon holds its own descriptor now
  });
}

/** The holder's main: runs until its channel to the daemon closes. */
export async function runNamespaceHolder(): Promise<void> {
  if (!process.send) throw new Error('the namespace holder is started by the telepod daemon only');
  process.on('disconnect', () => process.exit(0));
  try {
    await setUpLinks();
    const tcp = net.createServer();
    await new Promise<void>((resolve, reject) =>
      tcp.once('error', reject).listen({ port: 0, host: '127.0.0.1', backlog: LISTEN_BACKLOG }, resolve),
    );
    const dns = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => dns.once('error', reject).bind(0, '127.0.0.1', resolve));
    const tcpPort = (tcp.address() as net.AddressInfo).port;
    await command('nft', ['-f', '-'], namespaceRuleset({ tcpPort, dnsPort: dns.address().port }));
    await send({ kind: 'tcp' }, tcp);
    tcp.close(); // the daemon accepts on its copy
    await send({ kind: 'dns', pid: process.pid }, dns);
    dns.close();
  } catch (err) {
    await send({ kind: 'failed', error: (err as Error).message }).catch(() => undefined);
    process.exit(1);
  }
  const updateHostPorts = hostPortsKeeper();
  process.on('message', (raw) => {
    const parsed = ToHolderSchema.safeParse(raw);
    if (!parsed.success) return;
    const message = parsed.data;
    if (message.kind === 'connect') connectInside(message.id, message.port);
    else updateHostPorts(message.ports);
  });
}
