// Entry point of the traffic manager (runs in the cluster from the ConfigMap bundle).
import { readFileSync } from 'node:fs';
import type { Http2Session } from 'node:http2';
import { MANAGER_PORT } from '../protocol/paths.ts';
import { createManagerServer } from './server.ts';

const nameserver = /^nameserver\s+(\S+)/m.exec(readFileSync('/etc/resolv.conf', 'utf8'))?.[1] ?? '127.0.0.1';
const port = Number(process.env.TELEPOD_MANAGER_PORT ?? MANAGER_PORT);
const server = createManagerServer({ dnsServer: nameserver });
server.listen(port, () =>
  process.stdout.write(`telepod traffic manager on :${port}, DNS via ${nameserver}\n`),
);
// Stopping: end every tunnel at once (daemons reconnect to the next manager pod) and exit.
const tunnels = new Set<Http2Session>();
server.on('session', (session) => {
  tunnels.add(session);
  session.once('close', () => tunnels.delete(session));
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    server.close();
    for (const session of tunnels) session.destroy();
    setTimeout(() => process.exit(0), 200);
  });
}
