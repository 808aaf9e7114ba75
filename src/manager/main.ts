// Entry point of the traffic manager (runs in the cluster from the ConfigMap bundle): restores
// what an earlier manager left changed, then serves daemons and agents.
import { existsSync, readFileSync } from 'node:fs';
import type { Http2Session } from 'node:http2';
import { MANAGER_PORT } from '../protocol/paths.ts';
import { Intercepts } from './intercepts.ts';
import { InClusterKubeApi } from './kube-api.ts';
import { createManagerServer } from './server.ts';

const SA_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
const log = (message: string) => process.stdout.write(`${new Date().toISOString()} ${message}\n`);

const nameserver = /^nameserver\s+(\S+)/m.exec(readFileSync('/etc/resolv.conf', 'utf8'))?.[1] ?? '127.0.0.1';
const port = MANAGER_PORT;
let intercepts: Intercepts | undefined;
if (existsSync(SA_NAMESPACE)) {
  const namespace = readFileSync(SA_NAMESPACE, 'utf8').trim();
  intercepts = new Intercepts({
    api: new InClusterKubeApi(),
    agentBundle: readFileSync(new URL('./agent.mjs', import.meta.url), 'utf8'),
    managerAddress: `telepod-manager.${namespace}:${port}`,
    defaultImage: process.env.TELEPOD_IMAGE ?? 'docker.io/library/node:22-bookworm-slim',
  });
  const restored = await intercepts.restoreLeftovers();
  for (const what of restored) log(`restored ${what}, left changed by an earlier manager`);
} else {
  log('no service account token: intercepts are disabled');
}
const server = createManagerServer({ dnsServer: nameserver, ...(intercepts ? { intercepts } : {}) });
server.listen(port, () => log(`telepod traffic manager on :${port}, DNS via ${nameserver}`));
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
