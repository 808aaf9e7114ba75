// The daemon's control socket as the CLI uses it: plain JSON answers, and progress answers that
// carry each step as it begins and then the value or the failure.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { callDaemon, callDaemonWithProgress } from '../cli/daemon-client.ts';
import type { Progress } from '../cli/progress.ts';
import { usageError } from '../protocol/errors.ts';
import { startControlServer } from './control.ts';

let server: http.Server;
const dir = mkdtempSync(path.join(tmpdir(), 'telepod-control-'));
const previousRunDir = process.env.TELEPOD_RUN_DIR;

before(async () => {
  process.env.TELEPOD_RUN_DIR = dir;
  server = await startControlServer({
    '/steps': async (_body, step) => {
      step('one');
      await new Promise((resolve) => setImmediate(resolve));
      step('two');
      return { answer: 42 };
    },
    '/fails': (_body, step) => {
      step('trying');
      return Promise.reject(usageError('no such workload'));
    },
  });
});

after(async () => {
  await new Promise((resolve) => server.close(resolve));
  if (previousRunDir === undefined) delete process.env.TELEPOD_RUN_DIR;
  else process.env.TELEPOD_RUN_DIR = previousRunDir;
  rmSync(dir, { recursive: true, force: true });
});

function recorder(): Progress & { seen: string[] } {
  const seen: string[] = [];
  return {
    seen,
    shown: true,
    step: (text) => seen.push(`step ${text}`),
    end: (ok) => seen.push(`end ${ok}`),
  };
}

test('a progress call hears each step in order, then gets the value', async () => {
  const progress = recorder();
  const value = await callDaemonWithProgress<{ answer: number }>('/steps', {}, progress);
  assert.deepEqual(value, { answer: 42 });
  assert.deepEqual(progress.seen, ['step one', 'step two', 'end true']);
});

test("a progress call's failure keeps its message and exit code, and ends the step as failed", async () => {
  const progress = recorder();
  await assert.rejects(callDaemonWithProgress('/fails', {}, progress), {
    message: 'no such workload',
    exitCode: 2,
  });
  assert.deepEqual(progress.seen, ['step trying', 'end false']);
});

test('a plain call of the same route gets plain JSON (older CLIs, scripts)', async () => {
  assert.deepEqual(await callDaemon('/steps', {}), { answer: 42 });
});

test('an unknown route is refused in both forms', async () => {
  const progress = recorder();
  await assert.rejects(callDaemonWithProgress('/nope', {}, progress), /no such daemon call \/nope/);
  assert.deepEqual(progress.seen, ['end false']);
  await assert.rejects(callDaemon('/nope', {}), /no such daemon call \/nope/);
});

/** A stand-in daemon on the socket that answers with `respond`, for the client's failure cases. */
async function withFakeDaemon(
  respond: (res: http.ServerResponse) => void,
  check: () => Promise<void>,
): Promise<void> {
  const { createServer } = await import('node:http');
  const fake = createServer((req, res) => {
    req.resume();
    req.on('end', () => respond(res));
  });
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await new Promise<void>((resolve) => fake.listen(path.join(dir, 'daemon.sock'), resolve));
  try {
    await check();
  } finally {
    await new Promise((resolve) => fake.close(resolve));
    server = await startControlServer({});
  }
}

test('a daemon that dies in the middle of a call fails it at once', async () => {
  const progress = recorder();
  await withFakeDaemon(
    (res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write('{"step":"waiting"}\n', () => res.socket?.destroy());
    },
    () =>
      assert.rejects(
        callDaemonWithProgress('/x', {}, progress),
        /the telepod daemon stopped during the call/,
      ),
  );
  assert.deepEqual(progress.seen, ['step waiting', 'end false']);
});

test('a line that is not JSON is an error, not a crash', async () => {
  await withFakeDaemon(
    (res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.end('not json\n');
    },
    () => assert.rejects(callDaemonWithProgress('/x', {}, recorder()), /answered something that is not JSON/),
  );
});

test('an older daemon that answers plainly is understood', async () => {
  await withFakeDaemon(
    (res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"answer":7}');
    },
    async () => assert.deepEqual(await callDaemonWithProgress('/x', {}, recorder()), { answer: 7 }),
  );
});
