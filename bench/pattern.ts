// The bytes the benchmark moves: a 1 MiB block of a fixed pattern, repeated. The in-cluster
// server builds the same block (see `serverScript`), so both ends can checksum without
// sending checksums of random data around.
import { createHash } from 'node:crypto';

export const BLOCK_BYTES = 1 << 20;
const PATTERN_SOURCE = `const block = Buffer.alloc(${BLOCK_BYTES}); for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 255;`;

export function patternBlock(): Buffer {
  const block = Buffer.alloc(BLOCK_BYTES);
  for (let i = 0; i < block.length; i++) block[i] = (i * 31 + 7) & 255;
  return block;
}

/** The sha256 of `bytes` bytes of the repeated pattern. */
export function patternSha256(bytes: number): string {
  const block = patternBlock();
  const hash = createHash('sha256');
  for (let left = bytes; left > 0; left -= BLOCK_BYTES)
    hash.update(block.subarray(0, Math.min(left, BLOCK_BYTES)));
  return hash.digest('hex');
}

/**
 * The in-cluster server: GET /download?bytes=N streams the pattern, POST /upload answers the
 * byte count and sha256 of the body, GET /env the pod's $ROLLOUT (which rollout made it),
 * anything else answers `ok`.
 */
export const serverScript = `
const http = require('http'); const crypto = require('crypto');
${PATTERN_SOURCE}
process.on('SIGTERM', () => process.exit(0));
http.createServer((q, s) => {
  const url = new URL(q.url, 'http://x');
  if (url.pathname === '/download') {
    let left = Number(url.searchParams.get('bytes'));
    s.writeHead(200, { 'content-length': left });
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, block.length); left -= n;
        if (!s.write(n === block.length ? block : block.subarray(0, n))) return void s.once('drain', pump);
      }
      s.end();
    };
    return pump();
  }
  if (url.pathname === '/upload') {
    const hash = crypto.createHash('sha256'); let bytes = 0;
    q.on('data', (c) => { hash.update(c); bytes += c.length; });
    return q.on('end', () => s.end(JSON.stringify({ bytes, sha256: hash.digest('hex') })));
  }
  if (url.pathname === '/env') return s.end(process.env.ROLLOUT ?? '');
  s.end('ok');
}).listen(8000);
`;
