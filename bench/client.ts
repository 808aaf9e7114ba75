// The benchmark's client, run inside a network namespace (workstation or node) by the driver:
// one measurement per call, its result as JSON on stdout. A transfer that is cut short, reset
// or corrupted exits 1 with the reason on stderr and nothing on stdout.
//   download <url> <bytes> | upload <url> <bytes> | ttfb <url> <count> | concurrent <url> <count> <bytes>
//   rotate <count> <probe: ttfb:<url> | dns:<server>:<name>>...
//   dns <server> <name, {i} = the lookup's number> <count> | until <url> <text> <timeoutMs> [readyFile]
//   hold <url> <connections> <seconds> <bytes> <requests per connection>
//   poll <url> <intervalMs> <stopFile>
import { Resolver } from 'node:dns/promises';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { BLOCK_BYTES, patternBlock, patternSha256 } from './pattern.ts';

const elapsedMs = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

/** Nothing sent or received for this long fails a request. */
const IDLE_TIMEOUT_MS = 60_000;

const describe = (err: NodeJS.ErrnoException) => (err.code ? `${err.message} (${err.code})` : err.message);

/**
 * A GET on a new connection (or on one of `agent`'s): status, time to first byte, body size and
 * sha256, and whether the connection was new.
 */
function get(
  url: string,
  agent: http.Agent | false = false,
): Promise<{ status: number; firstByteMs: number; bytes: number; sha256: string; newConnection: boolean }> {
  const start = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent }, (res) => {
      const firstByteMs = elapsedMs(start);
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
      });
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          firstByteMs,
          bytes,
          sha256: hash.digest('hex'),
          newConnection: !req.reusedSocket,
        }),
      );
      // Node ends a body cut short of its content-length with an error, never with 'end'.
      res.on('error', (err) =>
        reject(new Error(`${url}: connection lost after ${bytes} bytes of the body: ${describe(err)}`)),
      );
    });
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`idle for ${IDLE_TIMEOUT_MS} ms`)));
    req.on('error', (err) => reject(new Error(`${url}: ${describe(err)}`)));
  });
}

/** The body of a GET on a new connection; '' if it fails or stays silent for 2 s. */
function getText(url: string): Promise<string> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(body));
      res.on('error', () => resolve(''));
    });
    req.setTimeout(2000, () => req.destroy());
    req.on('error', () => resolve(''));
  });
}

/** Throws unless `got` is `bytes` bytes of the pattern, whose sha256 is `expected`. */
function verify(what: string, bytes: number, expected: string, got: { bytes: number; sha256: string }): void {
  if (got.bytes !== bytes) throw new Error(`${what} short: ${got.bytes} of ${bytes} bytes arrived`);
  if (got.sha256 !== expected)
    throw new Error(`${what} corrupted: sha256 ${got.sha256}, expected ${expected}`);
}

async function download(url: string, bytes: number) {
  const start = process.hrtime.bigint();
  const result = await get(`${url}/download?bytes=${bytes}`);
  const seconds = elapsedMs(start) / 1000;
  if (result.status !== 200) throw new Error(`download answered HTTP ${result.status}`);
  verify('download', bytes, patternSha256(bytes), result);
  return { MBps: bytes / 1e6 / seconds, bytes: result.bytes, sha256: result.sha256 };
}

async function upload(url: string, bytes: number) {
  const block = patternBlock();
  const start = process.hrtime.bigint();
  let left = bytes;
  const answer = await new Promise<string>((resolve, reject) => {
    const req = http.request(
      `${url}/upload`,
      { method: 'POST', agent: false, headers: { 'content-length': bytes } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () =>
          res.statusCode === 200
            ? resolve(text)
            : reject(new Error(`upload answered HTTP ${res.statusCode}`)),
        );
        res.on('error', (err) => reject(new Error(`upload: the answer was cut off: ${describe(err)}`)));
      },
    );
    req.setTimeout(IDLE_TIMEOUT_MS, () => req.destroy(new Error(`idle for ${IDLE_TIMEOUT_MS} ms`)));
    req.on('error', (err) =>
      reject(
        new Error(
          `upload: connection lost after writing ${bytes - left} of ${bytes} bytes: ${describe(err)}`,
        ),
      ),
    );
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
  let echoed: { bytes: number; sha256: string };
  try {
    echoed = JSON.parse(answer) as { bytes: number; sha256: string };
  } catch {
    throw new Error(`upload: the server's answer is not its byte count and sha256: ${answer.slice(0, 200)}`);
  }
  // What the server received, as it counted and hashed it.
  verify('upload', bytes, patternSha256(bytes), echoed);
  return { MBps: bytes / 1e6 / seconds, bytes: echoed.bytes, sha256: echoed.sha256 };
}

/** Sequential requests, each on a new connection: time to the response's first byte. */
async function ttfb(url: string, count: number) {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) samples.push((await get(url)).firstByteMs);
  return { samples };
}

/**
 * `count` rounds of every probe in turn, one after another (`ttfb:<url>`: a new connection's time
 * to first byte; `dns:<server>:<name>`: one lookup, as `dns` makes it), each round starting with
 * the next probe: each probe's samples.
 * Taking turns probe by probe, the paths compared share the machine's moment, which moved
 * between runs of one path after the other (README, Performance).
 */
async function rotate(count: number, probes: string[]) {
  const run = probes.map((probe): ((i: number) => Promise<number>) => {
    const [kind, ...rest] = probe.split(':');
    if (kind === 'ttfb') return async () => (await get(rest.join(':'))).firstByteMs;
    if (kind === 'dns' && rest.length === 2) {
      const resolver = lookupsAt(rest[0]!);
      return (i) => timedLookup(resolver, rest[1]!, i);
    }
    throw new Error(`unknown probe ${probe}`);
  });
  const samples = probes.map((): number[] => []);
  for (let i = 0; i < count; i++) {
    // Each round starts one probe further on, so that each follows each other equally often.
    for (let k = 0; k < run.length; k++) {
      const p = (i + k) % run.length;
      samples[p]!.push(await run[p]!(i));
    }
  }
  return { samples };
}

async function concurrent(url: string, count: number, bytes: number) {
  const start = process.hrtime.bigint();
  const results = await Promise.allSettled(
    Array.from({ length: count }, () => get(`${url}/download?bytes=${bytes}`)),
  );
  const seconds = elapsedMs(start) / 1000;
  const ok = results.filter((r) => r.status === 'fulfilled' && r.value.bytes === bytes).length;
  const failed = results.find((r) => r.status === 'rejected');
  const firstError = failed ? String((failed.reason as Error).message) : undefined;
  return { errors: count - ok, MBps: (ok * bytes) / 1e6 / seconds, seconds, firstError };
}

/**
 * `connections` workers, each holding one keep-alive connection for `perConnection` verified
 * downloads of `bytes` before it opens the next, until `seconds` have passed. Counts requests,
 * connections opened and errors (any failed, short or corrupted answer). A connection's
 * requests follow one another at once, well within the servers' keep-alive timeout (5 s).
 */
async function hold(url: string, connections: number, seconds: number, bytes: number, perConnection: number) {
  const expected = patternSha256(bytes);
  const deadline = Date.now() + seconds * 1000;
  const samples: number[] = [];
  const errors: string[] = [];
  let requests = 0;
  let opened = 0;
  const worker = async () => {
    while (Date.now() < deadline) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (let i = 0; i < perConnection && Date.now() < deadline; i++) {
          requests++;
          const start = process.hrtime.bigint();
          const result = await get(`${url}/download?bytes=${bytes}`, agent);
          if (result.newConnection) opened++;
          if (result.status !== 200) throw new Error(`download answered HTTP ${result.status}`);
          verify('download', bytes, expected, result);
          samples.push(elapsedMs(start));
        }
      } catch (err) {
        errors.push((err as Error).message);
        await new Promise((resolve) => setTimeout(resolve, 100)); // no busy loop on a dead path
      } finally {
        agent.destroy();
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  return {
    requests,
    connectionsOpened: opened,
    errors: errors.length,
    firstErrors: [...new Set(errors)].slice(0, 5),
    samples,
  };
}

function lookupsAt(server: string): Resolver {
  const resolver = new Resolver({ timeout: 2000, tries: 1 });
  resolver.setServers([server]);
  return resolver;
}

/** Milliseconds one A lookup of `name` (`{i}` replaced by `i`) took. */
async function timedLookup(resolver: Resolver, name: string, i: number): Promise<number> {
  const start = process.hrtime.bigint();
  // `{i}` in the name makes every lookup a new name (no cache helps); those must not exist.
  const lookup = resolver.resolve4(name.replace('{i}', String(i)));
  if (name.includes('{i}')) {
    await lookup.then(
      () => Promise.reject(new Error(`${name} exists`)),
      (err: NodeJS.ErrnoException) => (err.code === 'ENOTFOUND' ? undefined : Promise.reject(err)),
    );
  } else await lookup;
  return elapsedMs(start);
}

async function dns(server: string, name: string, count: number) {
  const resolver = lookupsAt(server);
  const samples: number[] = [];
  for (let i = 0; i < count; i++) samples.push(await timedLookup(resolver, name, i));
  return { samples };
}

/**
 * Polls `url` every 50 ms until its body contains `text`: milliseconds until it did, and when
 * (epoch ms). `readyFile`, when given, is created once the first answer came back, so that the
 * driver can start what it measures with the poller already polling.
 */
async function until(url: string, text: string, timeoutMs: number, readyFile?: string) {
  const start = process.hrtime.bigint();
  let announced = !readyFile;
  while (elapsedMs(start) < timeoutMs) {
    // A new connection each time, as a new client would open: a kept-alive one would stay with
    // the pod it reached first (kube-proxy's conntrack entry) until that pod closes it.
    const body = await getText(url);
    if (!announced) writeFileSync(readyFile!, ''); // once: the driver removes it when it has seen it
    announced = true;
    if (body.includes(text)) return { ms: elapsedMs(start), at: Date.now() };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${url} did not answer ${text} within ${timeoutMs} ms`);
}

/** A request cut short of an answer for this long counts as hung. */
const POLL_TIMEOUT_MS = 3000;

/**
 * A new connection to `url` every `intervalMs` (each request waits for the one before), until
 * `stopFile` exists: when each answered request started (epoch ms), and each one that failed or
 * hung, when and why. The driver tells the phases apart by those times.
 */
async function poll(url: string, intervalMs: number, stopFile: string) {
  const answeredAt: number[] = [];
  const failures: { at: number; error: string }[] = [];
  let slowestMs = 0;
  while (!existsSync(stopFile)) {
    const at = Date.now();
    const failure = await new Promise<string | undefined>((resolve) => {
      const req = http.get(url, { agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode === 200 ? undefined : `HTTP ${res.statusCode}`));
        res.on('error', (err) => resolve(describe(err)));
        res.on('close', () => resolve('closed before the answer ended'));
      });
      // A deadline for the whole request, not only for silence on its socket.
      const deadline = setTimeout(
        () => req.destroy(new Error(`hung ${POLL_TIMEOUT_MS} ms`)),
        POLL_TIMEOUT_MS,
      );
      req.on('close', () => clearTimeout(deadline));
      req.on('error', (err) => resolve(describe(err)));
    });
    slowestMs = Math.max(slowestMs, Date.now() - at);
    if (failure) failures.push({ at, error: failure });
    else answeredAt.push(at);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, intervalMs - (Date.now() - at))));
  }
  return { answeredAt, failures, slowestMs };
}

const [command, ...args] = process.argv.slice(2);
const n = (i: number) => Number(args[i]);
const measurements: Record<string, () => Promise<unknown>> = {
  download: () => download(args[0]!, n(1)),
  upload: () => upload(args[0]!, n(1)),
  ttfb: () => ttfb(args[0]!, n(1)),
  rotate: () => rotate(n(0), args.slice(1)),
  concurrent: () => concurrent(args[0]!, n(1), n(2)),
  dns: () => dns(args[0]!, args[1]!, n(2)),
  until: () => until(args[0]!, args[1]!, n(2), args[3]),
  hold: () => hold(args[0]!, n(1), n(2), n(3), n(4)),
  poll: () => poll(args[0]!, n(1), args[2]!),
};
const measure = measurements[command ?? ''];
if (!measure) throw new Error(`unknown measurement ${command}`);
try {
  process.stdout.write(`${JSON.stringify(await measure())}\n`);
} catch (err) {
  process.stderr.write(`${command} failed: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
