// Proves the CLI's calls to the daemon over its unix socket (daemon-client.ts) against a stand-in
// daemon in a scratch TELEPOD_RUN_DIR: a plain answer, a refusal with its exit code, a progress
// answer's steps and outcome, a daemon that stops mid-answer, and no daemon at all.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { PROGRESS_MEDIA_TYPE } from '../protocol/daemon-api.ts';
import { TelepodError } from '../protocol/errors.ts';
import { callDaemon, callDaemonWithProgress } from './daemon-client.ts';

const scratch = mkdtempSync(join(tmpdir(), 'telepod-daemon-calls-'));
const saved = process.env.TELEPOD_RUN_DIR;
/** What the stand-in daemon was asked: path, Host header, body. */
const asked: { path: string; host: string | undefined; body: string }[] = [];

/** The stand-in daemon's answers by path. */
const daemon = http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk: Buffer) => (body += chunk.toString()));
  req.on('end', () => {
    asked.push({ path: req.url ?? '', host: req.headers.host, body });
    if (req.url === '/echo') return res.end(JSON.stringify({ got: JSON.parse(body) as unknown }));
    if (req.url === '/refuse') {
      res.statusCode = 400;
      return res.end(JSON.stringify({ error: 'no such workload', exitCode: 2 }));
    }
    if (req.url === '/steps') {
      res.setHeader('content-type', PROGRESS_MEDIA_TYPE);
      res.write(`${JSON.stringify({ step: 'one' })}\n`);
      res.write(`${JSON.stringify({ step: 'two' })}\n${JSON.stringify({ result: { ok: 1 } })}`);
      return res.end('\n');
    }
    if (req.url === '/stop') {
      res.setHeader('content-type', PROGRESS_MEDIA_TYPE);
      res.write(`${JSON.stringify({ step: 'one' })}\n`);
      return setImmediate(() => res.socket?.destroy());
    }
    res.statusCode = 404;
    res.end('{}');
  });
});

before(async () => {
  process.env.TELEPOD_RUN_DIR = scratch;
  await new Promise<void>((resolve) => daemon.listen(join(scratch, 'daemon.sock'), resolve));
});
after(() => {
  daemon.close();
  rmSync(scratch, { recursive: true, force: true });
  if (saved === undefined) delete process.env.TELEPOD_RUN_DIR;
  else process.env.TELEPOD_RUN_DIR = saved;
});

/** A progress display that records what it was shown. */
function recorder() {
  const shown: string[] = [];
  return {
    shown,
    progress: {
      shown: true,
      step: (text: string) => shown.push(text),
      end: (ok: boolean) => shown.push(`end ${ok}`),
    },
  };
}

test('a call sends its body and gets the answer, on a connection named localhost', async () => {
  assert.deepEqual(await callDaemon('/echo', { a: [1] }), { got: { a: [1] } });
  assert.deepEqual(asked.at(-1), { path: '/echo', host: 'localhost', body: '{"a":[1]}' });
});

test("a refusal is thrown with the daemon's message and exit code", async () => {
  await assert.rejects(
    callDaemon('/refuse'),
    (err: unknown) => err instanceof TelepodError && err.message === 'no such workload' && err.exitCode === 2,
  );
});

test('a progress answer shows each step and gives the outcome', async () => {
  const { shown, progress } = recorder();
  assert.deepEqual(await callDaemonWithProgress('/steps', {}, progress), { ok: 1 });
  assert.deepEqual(shown, ['one', 'two', 'end true']);
});

test('a daemon that stops mid-answer is a clear error, and the step ends as failed', async () => {
  const { shown, progress } = recorder();
  await assert.rejects(
    callDaemonWithProgress('/stop', {}, progress),
    /the telepod daemon stopped during the call/,
  );
  assert.deepEqual(shown, ['one', 'end false']);
});

test('no daemon: the call fails with the socket error', async () => {
  const previous = process.env.TELEPOD_RUN_DIR;
  process.env.TELEPOD_RUN_DIR = join(scratch, 'none');
  try {
    await assert.rejects(callDaemon('/echo', {}), { code: 'ENOENT' });
    await assert.rejects(callDaemonWithProgress('/steps', {}, recorder().progress), { code: 'ENOENT' });
  } finally {
    process.env.TELEPOD_RUN_DIR = previous;
  }
});
