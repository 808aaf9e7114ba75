// Tests of the rootless namespace with a real holder (user and network namespaces, nft inside;
// no cluster): TCP of the namespace reaches the daemon with its original destination, and
// intercept connections into the namespace keep a server's first bytes and survive resets,
// also many at once.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { originalDestination } from '../original-dst.ts';
import { startOutboundListener } from '../outbound.ts';
import { holderCommand, openNamespace, type Namespace } from './namespace.ts';

const HOLDER_FROM_SOURCE = holderCommand([
  process.execPath,
  '--import',
  'tsx',
  '-e',
  "import('./src/daemon/rootless/holder.ts').then((m) => m.runNamespaceHolder())",
]);

let ns: Namespace;
const inside: ChildProcess[] = [];

/** `node -e <script>` in the namespace, entered as `run --rootless` enters it for the user's command. */
function nodeInside(script: string, stdio: StdioOptions = 'ignore'): ChildProcess {
  const enter = [`--target=${ns.pid}`, '--user', '--net', '--preserve-credentials', '--'];
  return spawn('nsenter', [...enter, process.execPath, '-e', script], { stdio });
}

/** A server in the namespace, once it listens (it prints then). */
async function startInside(script: string): Promise<void> {
  const child = nodeInside(script, ['ignore', 'pipe', 'inherit']);
  inside.push(child);
  await once(child.stdout!, 'data'); // it prints when it listens
}

/** What a client in the namespace reads from 127.0.0.1:<port> ('' when refused). */
async function readInside(port: number): Promise<string> {
  const client = nodeInside(
    `require('net').connect(${port}, '127.0.0.1').on('error', () => {}).pipe(process.stdout)`,
    ['ignore', 'pipe', 'ignore'],
  );
  let text = '';
  client.stdout!.setEncoding('utf8').on('data', (c: string) => (text += c));
  await once(client, 'close');
  return text;
}

before(async () => {
  ns = await openNamespace(pino({ level: 'silent' }), HOLDER_FROM_SOURCE);
});

/** From the second test on, the namespace's connections are served as the rootless daemon does. */
function serveDirectly(): void {
  if (ns.tcp.listenerCount('connection')) return;
  void startOutboundListener(() => assert.fail('no tunnel here'), pino({ level: 'silent' }), {
    server: ns.tcp,
    direct: () => true,
  });
}

after(() => {
  for (const child of inside) child.kill();
  ns?.close();
});

test("a connection in the namespace reaches the daemon's listener with its destination", async () => {
  const accepted = once(ns.tcp, 'connection') as Promise<[net.Socket]>;
  const client = nodeInside("require('net').connect(8000, '192.0.2.44').on('error', () => {})");
  const [socket] = await accepted;
  assert.deepEqual(originalDestination(socket), { host: '192.0.2.44', port: 8000 });
  socket.destroy();
  client.kill();
});

test("40 intercept connections at once each get the server's greeting", async () => {
  await startInside(
    "require('net').createServer((s) => s.end('BANNER\\n')).listen(18601, '127.0.0.1', () => console.log('up'))",
  );
  const greetings = await Promise.all(
    Array.from({ length: 40 }, async () => {
      const socket = await ns.connect(18601);
      let text = '';
      socket.setEncoding('utf8').on('data', (c: string) => (text += c));
      await once(socket, 'end');
      return text;
    }),
  );
  assert.deepEqual(greetings, Array(40).fill('BANNER\n'));
});

test('a server that resets at once: every connect settles, none with nothing', async () => {
  await startInside(
    "require('net').createServer((s) => s.resetAndDestroy()).listen(18602, '127.0.0.1', () => console.log('up'))",
  );
  const outcomes = await Promise.allSettled(Array.from({ length: 40 }, () => ns.connect(18602)));
  for (const outcome of outcomes) {
    if (outcome.status === 'fulfilled') {
      assert.ok(outcome.value instanceof net.Socket);
      outcome.value.destroy();
    } else {
      assert.ok(outcome.reason instanceof Error);
    }
  }
});

test('a port nothing listens on in the namespace is refused, even when the machine has it', async () => {
  serveDirectly();
  const machine = net.createServer((s) => s.end('the machine\n'));
  await new Promise<void>((resolve) => machine.listen(18603, '127.0.0.1', resolve));
  try {
    // Once the namespace's set has the machine's port (refreshed every second), the command
    // reaches it; the holder's own connection still does not.
    const deadline = Date.now() + 10_000;
    while ((await readInside(18603)) !== 'the machine\n') {
      assert.ok(Date.now() < deadline, "the machine's port never became reachable in the namespace");
    }
    await assert.rejects(ns.connect(18603), /ECONNREFUSED/);
  } finally {
    machine.close();
  }
});
