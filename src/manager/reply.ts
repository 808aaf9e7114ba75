// Small helpers for answering HTTP/2 streams on the manager: a body with a status, JSON, and
// the error shape the daemon turns back into a TelepodError.
import http2 from 'node:http2';
import type * as z from 'zod/mini';
import { ExitCode, TelepodError, usageError } from '../protocol/errors.ts';
import type { ManagerError } from '../protocol/paths.ts';
import { endedCleanly, reset } from '../protocol/liveness.ts';
import { parseRequest } from '../protocol/requests.ts';

export function reply(
  stream: http2.ServerHttp2Stream,
  status: number,
  body: string | Buffer,
  type = 'text/plain',
) {
  if (stream.destroyed || stream.headersSent) return;
  stream.respond({ ':status': status, 'content-type': type });
  stream.end(body);
}

export function replyJson(stream: http2.ServerHttp2Stream, value: unknown, status = 200) {
  reply(stream, status, JSON.stringify(value), 'application/json');
}

/**
 * Bad input → 400; telepod's refusals by their own `status` (401, 403, 409); anything else
 * (an API server's error included) → 500.
 */
export function replyError(stream: http2.ServerHttp2Stream, err: unknown) {
  const known = err instanceof TelepodError;
  const exitCode = known ? err.exitCode : ExitCode.failure;
  const own = known ? (err as { status?: number }).status : undefined;
  const status = own ?? (exitCode === ExitCode.usage ? 400 : 500);
  replyJson(stream, { error: (err as Error).message, exitCode } satisfies ManagerError, status);
}

/** The largest JSON body the manager reads (an agent's hello carries the app's environment). */
const MAX_JSON_BYTES = 1 << 20;
/** How long a body may take to arrive. */
const BODY_TIMEOUT_MS = 30_000;

/**
 * A request body of at most `limit` bytes; a larger one is a usage error (the rest is read and
 * dropped, so the stream can still be answered), a slower one ends the stream.
 */
export function readBody(stream: http2.ServerHttp2Stream, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const timer = setTimeout(() => stream.destroy(), BODY_TIMEOUT_MS);
    stream.on('data', (chunk: Buffer) => {
      if (size > limit) return;
      size += chunk.length;
      if (size <= limit) return void chunks.push(chunk);
      chunks.length = 0;
      reject(usageError(`the request body is over ${limit} bytes`));
    });
    stream.once('end', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    stream.once('close', () => {
      clearTimeout(timer);
      reject(new Error('the stream closed before its body ended'));
    });
  });
}

/** A JSON body checked against `schema`; anything else is a usage error (HTTP 400). */
export async function readJson<T>(
  stream: http2.ServerHttp2Stream,
  schema: z.ZodMiniType<T>,
  what: string,
): Promise<T> {
  const text = (await readBody(stream, MAX_JSON_BYTES)).toString();
  let value: unknown;
  try {
    value = text ? JSON.parse(text) : {};
  } catch {
    throw usageError(`invalid ${what}: not JSON`);
  }
  return parseRequest(schema, value, what);
}

/** Pipes two streams both ways; a reset on one side resets the other. */
export function splice(a: http2.Http2Stream, b: http2.Http2Stream): void {
  a.pipe(b);
  b.pipe(a);
  for (const [from, to] of [
    [a, b],
    [b, a],
  ] as const) {
    from.once('close', () => {
      if (!endedCleanly(from)) reset(to);
    });
  }
}
