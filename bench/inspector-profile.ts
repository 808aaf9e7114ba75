// Run inside a process's network namespace (by bench/profile.ts, through nsenter): takes a CPU
// profile of the Node process whose inspector listens on 127.0.0.1:<port> (opened by SIGUSR1),
// from the moment it prints "started" until its stdin closes, writes it to <file>, and closes
// that inspector again so that nothing stays listening after the run.
//   node --import tsx bench/inspector-profile.ts <port> <file> [samplingIntervalUs]
import { writeFile } from 'node:fs/promises';
import WebSocket from 'ws';

const [port, file, interval = '200'] = process.argv.slice(2);
/** When the profiled process closes its inspector by itself, whatever happens to this client. */
const SAFETY_CLOSE_MS = 15 * 60_000;
// The driver ends a profile by closing stdin; a Ctrl-C meant for it must not cut this one short
// and leave the inspector open.
process.on('SIGINT', () => undefined);

/** The first debugging target the inspector lists: the process's main thread. */
async function debuggerUrl(): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
        webSocketDebuggerUrl: string;
      }[];
      if (targets[0]) return targets[0].webSocketDebuggerUrl;
    } catch (err) {
      if (attempt >= 50) throw err; // the inspector opens a moment after SIGUSR1
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function main(): Promise<void> {
  const ws = new WebSocket(await debuggerUrl(), { perMessageDeflate: false, maxPayload: 1 << 30 });
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  let nextId = 0;
  const pending = new Map<number, { resolve: (result: unknown) => void; reject: (err: Error) => void }>();
  ws.on('message', (data: Buffer) => {
    const message = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: unknown };
    const waiting = message.id === undefined ? undefined : pending.get(message.id);
    if (!waiting) return;
    pending.delete(message.id!);
    if (message.error) waiting.reject(new Error(`inspector: ${JSON.stringify(message.error)}`));
    else waiting.resolve(message.result);
  });
  ws.on('close', () => {
    for (const { reject } of pending.values()) reject(new Error('the inspector connection closed'));
  });
  const call = <T>(method: string, params: object = {}) =>
    new Promise<T>((resolve, reject) => {
      const id = ++nextId;
      pending.set(id, { resolve: resolve as (result: unknown) => void, reject });
      ws.send(JSON.stringify({ id, method, params }));
    });
  // Should this client die before it closes the inspector, the process closes it itself later.
  await call('Runtime.evaluate', {
    expression: `setTimeout(() => process.getBuiltinModule('node:inspector').close(), ${SAFETY_CLOSE_MS}).unref(), 0`,
  });
  await call('Profiler.enable');
  await call('Profiler.setSamplingInterval', { interval: Number(interval) });
  await call('Profiler.start');
  process.stdout.write('started\n');
  await new Promise((resolve) => process.stdin.on('data', () => undefined).once('end', resolve));
  const { profile } = await call<{ profile: unknown }>('Profiler.stop');
  await writeFile(file!, JSON.stringify(profile));
  // Closing the inspector waits for its sessions to end: close it once this one has gone.
  await call('Runtime.evaluate', {
    expression: `setTimeout(() => process.getBuiltinModule('node:inspector').close(), 200), 0`,
  });
  ws.close();
  // Exits once the inspector is closed: the driver's next SIGUSR1 must find it closed, or the
  // close still pending here would shut the inspector that signal meant to open.
  await inspectorClosed();
}

/** Waits (up to 5 s) until nothing answers on the inspector's port. */
async function inspectorClosed(): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const open = await fetch(`http://127.0.0.1:${port}/json/list`).then(
      () => true,
      () => false,
    );
    if (!open) return;
  }
  throw new Error(`the inspector on port ${port} is still open 5 s after it was told to close`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
