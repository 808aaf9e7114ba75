// Small helpers for answering HTTP/2 streams on the manager: a body with a status, JSON, and
// the error shape the daemon turns back into a TelepodError.
import http2 from 'node:http2';
import { ExitCode, TelepodError } from '../protocol/errors.ts';
import type { ManagerError } from '../protocol/paths.ts';

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

/** Bad input → 400, a conflict → 409 (by the error's `status`), anything else → 500. */
export function replyError(stream: http2.ServerHttp2Stream, err: unknown) {
  const known = err instanceof TelepodError;
  const exitCode = known ? err.exitCode : ExitCode.failure;
  const status = (err as { status?: number }).status ?? (exitCode === ExitCode.usage ? 400 : 500);
  replyJson(stream, { error: (err as Error).message, exitCode } satisfies ManagerError, status);
}

export async function readJson<T>(stream: http2.ServerHttp2Stream): Promise<T> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return JSON.parse(Buffer.concat(chunks).toString() || '{}') as T;
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
      if (from.rstCode && !to.destroyed) to.close(http2.constants.NGHTTP2_CANCEL);
    });
  }
}
