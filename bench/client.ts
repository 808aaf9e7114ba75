// The benchmark's client, run inside a network namespace (workstation or node) by the driver:
// one measurement per call, its result as JSON on stdout.
//   download <url> <bytes> | upload <url> <bytes> | ttfb <url> <count> | concurrent <url> <count> <bytes>
//   dns <server> <name, {i} = the lookup's number> <count> | until <url> <text> <timeoutMs>
import { Resolver } from 'node:dns/promises';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { BLOCK_BYTES, patternBlock, patternSha256 } from './pattern.ts';

const elapsedMs = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

function get(url: string): Promise<{ status: number; firstByteMs: number; bytes: number; sha256: string }> {
  const start = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false }, (res) => {
      const firstByteMs = elapsedMs(start);
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, firstByteMs, bytes, sha256: hash.digest('hex') }),
      );
      res.on('error', reject);
    });
    req.setTimeout(60_000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

async function download(url: string, bytes: number) {
  const start = process.hrtime.bigint();
  const result = await get(`${url}/download?bytes=${bytes}`);
  const seconds = elapsedMs(start) / 1000;
  if (result.bytes !== bytes || result.sha256 !== patternSha256(bytes))
    throw new Error('download checksum mismatch');
  return { MBps: bytes / 1e6 / seconds };
}

async function upload(url: string, bytes: number) {
  const block = patternBlock();
  const start = process.hrtime.bigint();
  const answer = await new Promise<string>((resolve, reject) => {
    const req = http.request(
      `${url}/upload`,
      { method: 'POST', agent: false, headers: { 'content-length': bytes } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve(text));
      },
    );
    req.on('error', reject);
    let left = bytes;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, BLOCK_BYTES);
        left -= n;
        if (!req.write(n === BLOCK_BYTES ? block : block.subarray(0, n))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  const seconds = elapsedMs(start) / 1000;
  const echoed = JSON.parse(answer) as { bytes: number; sha256: string };
  if (echoed.bytes !== bytes || echoed.sha256 !== patternSha256(bytes))
    throw new Error('upload checksum mismatch');
  return { MBps: bytes / 1e6 / seconds };
}

/** Sequential requests, each on a new connection: time to the response's first byte. */
async function ttfb(url: string, count: number) {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) samples.push((await get(url)).firstByteMs);
  return { samples };
}

async function concurrent(url: string, count: number, bytes: number) {
  const start = process.hrtime.bigint();
  const results = await Promise.allSettled(
    Array.from({ length: count }, () => get(`${url}/download?bytes=${bytes}`)),
  );
  const seconds = elapsedMs(start) / 1000;
  const ok = results.filter((r) => r.status === 'fulfilled' && r.value.bytes === bytes).length;
  return { errors: count - ok, MBps: (ok * bytes) / 1e6 / seconds };
}

async function dns(server: string, name: string, count: number) {
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([server]);
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    // `{i}` in the name makes every lookup a new name (no cache helps); those must not exist.
    const lookup = resolver.resolve4(name.replace('{i}', String(i)));
    if (name.includes('{i}')) {
      await lookup.then(
        () => Promise.reject(new Error(`${name} exists`)),
        (err: NodeJS.ErrnoException) => (err.code === 'ENOTFOUND' ? undefined : Promise.reject(err)),
      );
    } else await lookup;
    samples.push(elapsedMs(start));
  }
  return { samples };
}

/** Polls `url` every 50 ms until its body contains `text`: milliseconds until it did. */
async function until(url: string, text: string, timeoutMs: number) {
  const start = process.hrtime.bigint();
  while (elapsedMs(start) < timeoutMs) {
    const body = await fetch(url, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.text(),
      () => '',
    );
    if (body.includes(text)) return { ms: elapsedMs(start) };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${url} did not answer ${text} within ${timeoutMs} ms`);
}

const [command, ...args] = process.argv.slice(2);
const n = (i: number) => Number(args[i]);
const measurements: Record<string, () => Promise<unknown>> = {
  download: () => download(args[0]!, n(1)),
  upload: () => upload(args[0]!, n(1)),
  ttfb: () => ttfb(args[0]!, n(1)),
  concurrent: () => concurrent(args[0]!, n(1), n(2)),
  dns: () => dns(args[0]!, args[1]!, n(2)),
  until: () => until(args[0]!, args[1]!, n(2)),
};
const measure = measurements[command ?? ''];
if (!measure) throw new Error(`unknown measurement ${command}`);
process.stdout.write(`${JSON.stringify(await measure())}\n`);
