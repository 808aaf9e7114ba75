// Entry point of the traffic manager (runs in the cluster from the ConfigMap bundle): takes back
// the sessions and intercepts an earlier manager left (restoring what belongs to no live
// session), then serves daemons (on loopback, through their port-forwards) and agents (on the
// pod's address, behind the manager's Service). Only then is it Ready.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { Http2Session } from 'node:http2';
import { AGENT_IDLE_ENV, MAX_AGENT_IDLE_SECONDS } from '../protocol/intercept.ts';
import { keepMemoryLean } from '../protocol/node-flags.ts';
import { AGENT_API_PORT, MANAGER_PORT } from '../protocol/paths.ts';
import { ClusterInfoSource } from './cluster-info.ts';
import { Intercepts } from './intercepts.ts';
import { InClusterKubeApi, type KubeObject } from './kube-api.ts';
import { createManagerServers } from './server.ts';
import { LeaseSessionStore } from './session-leases.ts';
import { Sessions } from './sessions.ts';
import { Signer } from './signer.ts';

const SA_NAMESPACE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';
const log = (message: string) => process.stdout.write(`${new Date().toISOString()} ${message}\n`);

// Every request is answered or fails on its own; an error that still escapes is a bug, logged,
// and must not end every developer's session with the process.
process.on('uncaughtException', (err) => log(`internal error (kept running): ${err.stack ?? String(err)}`));
process.on('unhandledRejection', (err) => log(`internal error (kept running): ${String(err)}`));
keepMemoryLean();

/** The install's key for undo records (a Secret); without one, a random key: nothing earlier is trusted. */
function undoKey(): Buffer {
  const key = process.env.TELEPOD_UNDO_KEY;
  if (key) return Buffer.from(key, 'utf8');
  log('no TELEPOD_UNDO_KEY: undo records of earlier managers will not be trusted');
  return randomBytes(32);
}

const resolvConf = readFileSync('/etc/resolv.conf', 'utf8');
const nameserver = /^nameserver\s+(\S+)/m.exec(resolvConf)?.[1] ?? '127.0.0.1';
/** The cluster's DNS domain, from the pod's search list (`<ns>.svc.<domain> svc.<domain> …`). */
const clusterDomain = /^search\s.*?\bsvc\.(\S+)/m.exec(resolvConf)?.[1] ?? 'cluster.local';
/** `install --namespaces a,b` limits the manager to those namespaces; empty: cluster-wide. */
const namespaces = process.env.TELEPOD_NAMESPACES ? process.env.TELEPOD_NAMESPACES.split(',') : undefined;

/** `install --agent-idle`: how long a dormant agent stays, in ms; undefined: the default. */
function dormantIdleMs(): number | undefined {
  const value = process.env[AGENT_IDLE_ENV];
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isInteger(seconds) && seconds >= 0 && seconds <= MAX_AGENT_IDLE_SECONDS) return seconds * 1000;
  log(
    `${AGENT_IDLE_ENV}=${value} is not a number of seconds up to ${MAX_AGENT_IDLE_SECONDS}: using the default`,
  );
  return undefined;
}
let intercepts: Intercepts | undefined;
let clusterInfo: ClusterInfoSource | undefined;
let sessions: Sessions | undefined;
if (existsSync(SA_NAMESPACE)) {
  const namespace = readFileSync(SA_NAMESPACE, 'utf8').trim();
  const api = new InClusterKubeApi();
  const signer = new Signer(undoKey());
  sessions = new Sessions(new LeaseSessionStore(api, namespace, signer, log), log);
  const knownAddresses = [process.env.TELEPOD_POD_IP, nameserver, process.env.KUBERNETES_SERVICE_HOST];
  clusterInfo = new ClusterInfoSource(api, {
    namespaces,
    knownAddresses: knownAddresses.filter((a): a is string => !!a),
  });
  // The API server's version decides whether pods may pause in a preStop `sleep` (≥ 1.30).
  const version = await api
    .get<{ minor?: string } & KubeObject>('/version')
    .catch((err: Error) => (log(`cannot read the API server's version: ${err.message}`), undefined));
  const minor = Number.parseInt(version?.minor ?? '', 10);
  intercepts = new Intercepts({
    api,
    preStopSleep: minor >= 30,
    relayAddress: process.env.TELEPOD_POD_IP,
    namespaces,
    agentBundle: readFileSync(new URL('./agent.mjs', import.meta.url), 'utf8'),
    // Fully qualified and absolute: a relative name would first be tried under the agent's own
    // namespace (ndots), where anyone who may create a Service there could answer for it.
    managerAddress: `telepod-manager.${namespace}.svc.${clusterDomain}.:${AGENT_API_PORT}`,
    agentImage: process.env.TELEPOD_IMAGE ?? 'docker.io/library/node:22-bookworm-slim',
    dormantIdleMs: dormantIdleMs(),
    signer,
    log,
  });
  const live = await sessions.takeBack();
  log(`took back ${live.size} sessions`);
  for (const what of await intercepts.takeBack(live)) log(`${what}, left by an earlier manager`);
} else {
  log('no service account token: intercepts are disabled');
}
const { developer, agents } = createManagerServers({
  dnsServer: nameserver,
  log,
  ...(sessions ? { sessions } : {}),
  ...(intercepts ? { intercepts } : {}),
  ...(clusterInfo ? { clusterInfo } : {}),
});
developer.listen(MANAGER_PORT, '127.0.0.1', () => {
  log(`telepod traffic manager: developers on 127.0.0.1:${MANAGER_PORT}, DNS via ${nameserver}`);
  sessions?.serving(); // from now on, the sessions taken back can be resumed: their lease runs
});
agents.listen(AGENT_API_PORT, () => log(`agents on :${AGENT_API_PORT}`));
// Stopping: end every tunnel at once (daemons reconnect to the next manager pod) and exit.
const tunnels = new Set<Http2Session>();
for (const server of [developer, agents]) {
  server.on('session', (session: Http2Session) => {
    tunnels.add(session);
    session.once('close', () => tunnels.delete(session));
  });
}
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    developer.close();
    agents.close();
    for (const session of tunnels) session.destroy();
    setTimeout(() => process.exit(0), 200);
  });
}
