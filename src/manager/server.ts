// The traffic manager's HTTP/2 endpoint (cleartext h2; it is reached only through a
// port-forward). Today it answers health and version; sessions and tunnels build on it.
import http2 from 'node:http2';
import { PROTOCOL_VERSION, TELEPOD_VERSION } from '../protocol/version.ts';
import { MANAGER_PATHS } from '../protocol/paths.ts';

export function createManagerServer(): http2.Http2Server {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const path = headers[':path'];
    if (path === MANAGER_PATHS.health) {
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.end('ok\n');
    } else if (path === MANAGER_PATHS.version) {
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify({ version: TELEPOD_VERSION, protocol: PROTOCOL_VERSION }));
    } else {
      stream.respond({ ':status': 404 });
      stream.end();
    }
  });
  return server;
}
