// Keeps the chaos run honest. Without the testbed: bench/client.ts exits 1, saying why, when a
// transfer arrives short, cut off or corrupted. On the testbed: `bench/chaos.ts --quick` exits 0
// and chaos-latest.json shows every transfer whole (the pattern's sha256, computed here), no
// error under either load, and the RSS of daemon, manager and agent around each load.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { REPO } from './harness.ts';
import { patternBlock, patternSha256 } from './pattern.ts';

const MiB = 2 ** 20;

/** bench/client.ts with these arguments: its exit code and output. */
function runClient(...args: (string | number)[]) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bench/client.ts', ...args.map(String)], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.on('error', reject).on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/**
 * The pattern server's two routes under /<mode>/: `good` serves and counts honestly; `short`,
 * `cut` and `corrupt` send fewer bytes than asked, drop the connection midway, or wrong bytes
 * (for uploads: answer one byte less, reset the connection, or answer a wrong sha256).
 */
function faultyServer(): http.Server {
  const block = patternBlock();
  return http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    const [, mode, route] = url.pathname.split('/');
    if (route === 'download') {
      const bytes = Number(url.searchParams.get('bytes'));
      res.writeHead(200, { 'content-length': mode === 'short' ? 1000 : bytes });
      if (mode === 'short') return void res.end(block.subarray(0, 1000));
      if (mode === 'corrupt') return void res.end(Buffer.alloc(bytes));
      if (mode === 'cut') return void res.write(block, () => res.socket?.destroy());
      for (let sent = 0; sent < bytes; sent += block.length) res.write(block.subarray(0, bytes - sent));
      return void res.end();
    }
    if (mode === 'cut') return void req.once('data', () => req.socket.resetAndDestroy());
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    req.on('end', () =>
      res.end(
        JSON.stringify({
          bytes: mode === 'short' ? bytes - 1 : bytes,
          sha256: mode === 'corrupt' ? '0'.repeat(64) : hash.digest('hex'),
        }),
      ),
    );
  });
}

test('the client exits 1, saying why, on a short, cut off or corrupted transfer', async () => {
  const server = faultyServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const bytes = 4 * MiB;
  try {
    for (const direction of ['download', 'upload']) {
      const good = await runClient(direction, `${base}/good`, bytes);
      assert.equal(good.code, 0, good.stderr);
      const answer = JSON.parse(good.stdout) as { bytes: number; sha256: string };
      assert.equal(answer.bytes, bytes);
      assert.equal(answer.sha256, patternSha256(bytes));
    }
    const faults: [string, string, RegExp][] = [
      ['download', 'short', /^download failed: download short: 1000 of 4194304 bytes arrived$/],
      ['download', 'cut', /^download failed: .*connection lost after \d+ bytes of the body/],
      ['download', 'corrupt', /^download failed: download corrupted: sha256 [0-9a-f]{64}, expected/],
      ['upload', 'short', /^upload failed: upload short: 4194303 of 4194304 bytes arrived$/],
      ['upload', 'cut', /^upload failed: upload: connection lost after writing \d+ of 4194304 bytes/],
      ['upload', 'corrupt', /^upload failed: upload corrupted: sha256 0{64}, expected/],
    ];
    for (const [direction, mode, message] of faults) {
      const result = await runClient(direction, `${base}/${mode}`, bytes);
      assert.equal(result.code, 1, `${direction} ${mode} exits 1`);
      assert.equal(result.stdout, '', `${direction} ${mode} reports no result`);
      assert.match(result.stderr.trim(), message);
    }
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

const positive = (value: unknown, name: string) =>
  assert.ok(
    typeof value === 'number' && value > 0,
    `${name} should be a positive number, is ${String(value)}`,
  );

interface Results {
  date: string;
  quick: boolean;
  sizes: { transferBytes: number; loadSeconds: number };
  transfers: {
    path: string;
    direction: string;
    bytes: number;
    receivedBytes: number | null;
    sha256: string | null;
    error?: string;
  }[];
  loads: {
    path: string;
    connections: number;
    seconds: number;
    pass: number;
    requests: number;
    connectionsOpened: number;
    errors: number;
    error?: string;
    rssMB: Record<'before' | 'after', Record<string, unknown>>;
  }[];
  interrupted: { failedLoudly: boolean; message: string };
  ok: boolean;
}

test('chaos --quick loses no byte and holds the load', { timeout: 900_000 }, async () => {
  const started = Date.now();
  const chaos = spawn(process.execPath, ['--import', 'tsx', 'bench/chaos.ts', '--quick'], {
    cwd: REPO,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const code = await new Promise<number | null>((resolve, reject) =>
    chaos.on('error', reject).on('exit', resolve),
  );
  assert.equal(code, 0);
  process.stdout.write(`# chaos --quick took ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  const r = JSON.parse(
    await readFile(new URL('results/chaos-latest.json', import.meta.url), 'utf8'),
  ) as Results;
  assert.ok(Date.parse(r.date) >= started, 'chaos-latest.json is from this run');
  assert.equal(r.quick, true);
  assert.equal(r.sizes.transferBytes, 64 * MiB);
  const sha256 = patternSha256(64 * MiB);
  assert.deepEqual(r.transfers.map((t) => `${t.direction} ${t.path}`).sort(), [
    'download intercept',
    'download tunnel',
    'upload intercept',
    'upload tunnel',
  ]);
  for (const t of r.transfers) {
    const name = `${t.direction} through the ${t.path}`;
    assert.equal(t.error, undefined, name);
    assert.equal(t.bytes, 64 * MiB, name);
    assert.equal(t.receivedBytes, 64 * MiB, name);
    assert.equal(t.sha256, sha256, name);
  }
  assert.deepEqual(
    r.loads.map((l) => [l.path, l.connections, l.seconds, l.pass]),
    [
      ['tunnel', 200, 10, 1],
      ['tunnel', 200, 10, 2],
      ['intercept', 50, 10, 1],
      ['intercept', 50, 10, 2],
    ],
  );
  for (const l of r.loads) {
    assert.equal(l.error, undefined, l.path);
    assert.equal(l.errors, 0, `errors under load through the ${l.path}`);
    // Every worker finished requests; none of them could have without opening a connection.
    assert.ok(l.requests >= l.connections, `${l.path}: ${l.requests} requests`);
    assert.ok(l.connectionsOpened >= l.connections, `${l.path}: ${l.connectionsOpened} connections`);
    for (const when of ['before', 'after'] as const) {
      for (const owner of ['daemon', 'manager', 'agent'])
        positive(l.rssMB[when][owner], `${l.path} rssMB.${when}.${owner}`);
    }
  }
  assert.equal(r.interrupted.failedLoudly, true, r.interrupted.message);
  assert.match(r.interrupted.message, /download failed: /);
  assert.equal(r.ok, true);
});
