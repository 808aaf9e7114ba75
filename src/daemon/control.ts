// The daemon's control API for the CLI: HTTP/1 with JSON bodies on a unix socket, mode 0600,
// owned by the invoking user when started through sudo.
import { chmodSync, chownSync, mkdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { DAEMON_DIR, DAEMON_SOCKET, type DaemonError } from '../protocol/daemon-api.ts';
import { TelepodError } from '../protocol/errors.ts';

export type Handler = (body: unknown) => Promise<unknown>;

export async function startControlServer(routes: Record<string, Handler>): Promise<http.Server> {
  mkdirSync(DAEMON_DIR, { recursive: true, mode: 0o755 });
  rmSync(DAEMON_SOCKET, { force: true });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const handler = routes[req.url ?? ''];
      const send = (status: number, value: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (!handler)
        return send(404, { error: `no such daemon call ${req.url}`, exitCode: 1 } satisfies DaemonError);
      const body: unknown = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : undefined;
      handler(body).then(
        (value) => send(200, value ?? {}),
        (err: Error) =>
          send(500, {
            error: err.message,
            exitCode: err instanceof TelepodError ? err.exitCode : 1,
          } satisfies DaemonError),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(DAEMON_SOCKET, resolve));
  chmodSync(DAEMON_SOCKET, 0o600);
  const uid = Number(process.env.SUDO_UID);
  const gid = Number(process.env.SUDO_GID);
  if (uid > 0) chownSync(DAEMON_SOCKET, uid, gid || uid);
  return server;
}
