// The daemon's control API for the CLI: HTTP/1 with JSON bodies on a unix socket, mode 0600,
// owned by the invoking user when started through sudo. A caller that accepts
// PROGRESS_MEDIA_TYPE gets the steps of a long call as they begin, one JSON line each.
import { chmodSync, chownSync, rmSync } from 'node:fs';
import http from 'node:http';
import {
  daemonSocket,
  PROGRESS_MEDIA_TYPE,
  type DaemonError,
  type DaemonProgressLine,
  type ProgressStep,
} from '../protocol/daemon-api.ts';
import { ExitCode, TelepodError } from '../protocol/errors.ts';

/**
 * A route's handler gets the parsed JSON body (undefined when empty) and checks it itself; it
 * reports the steps of a long call through `step`.
 */
export type Handler = (body: unknown, step: ProgressStep) => Promise<unknown>;

function failure(err: Error): DaemonError {
  return { error: err.message, exitCode: err instanceof TelepodError ? err.exitCode : 1 };
}

/** Requests are JSON documents (connect's carries the kubeconfig, up to 4 MiB, and the CLI's environment); anything larger is refused unread. */
const MAX_BODY_BYTES = 8 << 20;

/** Listens on the daemon socket (the daemon made and checked its directory first). */
export async function startControlServer(routes: Record<string, Handler>): Promise<http.Server> {
  const socket = daemonSocket();
  rmSync(socket, { force: true });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const send = (status: number, value: unknown) => {
      if (res.headersSent) return;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY_BYTES) chunks.push(c);
    });
    req.on('end', () => {
      const handler = routes[req.url ?? ''];
      if (!handler)
        return send(404, { error: `no such daemon call ${req.url}`, exitCode: 1 } satisfies DaemonError);
      if (size > MAX_BODY_BYTES) {
        return send(400, {
          error: 'the request is too large',
          exitCode: ExitCode.usage,
        } satisfies DaemonError);
      }
      let body: unknown;
      try {
        body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
      } catch {
        return send(400, {
          error: 'the request is not JSON',
          exitCode: ExitCode.usage,
        } satisfies DaemonError);
      }
      if (req.headers.accept !== PROGRESS_MEDIA_TYPE) {
        handler(body, () => undefined).then(
          (value) => send(200, value ?? {}),
          (err: Error) => send(500, failure(err)),
        );
        return;
      }
      res.writeHead(200, { 'content-type': PROGRESS_MEDIA_TYPE });
      const line = (value: DaemonProgressLine) => {
        if (!res.writableEnded) res.write(`${JSON.stringify(value)}\n`);
      };
      handler(body, (step) => line({ step })).then(
        (value) => res.end(`${JSON.stringify({ result: value ?? {} } satisfies DaemonProgressLine)}\n`),
        (err: Error) =>
          res.end(`${JSON.stringify({ failure: failure(err) } satisfies DaemonProgressLine)}\n`),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, resolve));
  chmodSync(socket, 0o600);
  const uid = Number(process.env.SUDO_UID);
  const gid = Number(process.env.SUDO_GID);
  // Root's daemon lets the user who started it through sudo call it; a rootless daemon is that user.
  if (uid > 0 && process.getuid?.() === 0) chownSync(socket, uid, gid || uid);
  return server;
}
