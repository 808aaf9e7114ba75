// The outbound listener: every TCP connection the nft table redirects here is carried to its
// original destination through one CONNECT stream of the tunnel.
import net from 'node:net';
import type { Logger } from 'pino';
import { endedCleanly } from '../protocol/liveness.ts';
import { bindGetsockopt, originalDestination } from './original-dst.ts';
import type { Tunnel } from './tunnel.ts';

export async function startOutboundListener(tunnel: () => Tunnel, log: Logger): Promise<net.Server> {
  bindGetsockopt(); // a missing native add-on fails connect, not each connection
  const server = net.createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    let target: { host: string; port: number };
    try {
      target = originalDestination(socket);
    } catch (err) {
      log.warn({ err }, 'dropping a connection without an original destination');
      socket.destroy();
      return;
    }
    let opened: ReturnType<Tunnel['connect']>;
    try {
      opened = tunnel().connect(target.host, target.port);
    } catch (err) {
      log.debug({ target, err: (err as Error).message }, 'outbound connect failed');
      return void socket.resetAndDestroy();
    }
    const { stream, connected } = opened;
    // A stream cut short (the tunnel died) resets the client's connection: a transfer without a
    // length of its own must not look complete.
    stream.on('error', () => socket.resetAndDestroy());
    stream.once('close', () => {
      if (!endedCleanly(stream)) socket.resetAndDestroy();
    });
    socket.pipe(stream); // the request goes out now, not after the manager has connected
    connected.then(
      () => stream.pipe(socket),
      (err: Error) => {
        log.debug({ target, err: err.message }, 'outbound connect failed');
        socket.resetAndDestroy();
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}
