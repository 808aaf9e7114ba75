// One connected session of the daemon: manager ready, tunnel open, subnets known, outbound
// listener, DNS server and capture rules in place. `close` undoes all of it.
import { CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isIPv4, type Server } from 'node:net';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { loadKubeConfig, type LoadedKubeConfig } from '../kube/config.ts';
import { explainKubeError } from '../kube/errors.ts';
import {
  installManager,
  managerObjects,
  readManagerBundle,
  waitForManagerPod,
} from '../kube/manager-install.ts';
import { openPortForward } from '../kube/portforward.ts';
import { applyProxyFlags, discoverSubnets } from '../kube/subnets.ts';
import type { ConnectRequest, DaemonStatus } from '../protocol/daemon-api.ts';
import { usageError } from '../protocol/errors.ts';
import { MANAGER_PORT } from '../protocol/paths.ts';
import { startDnsServer, type DnsServer } from './dns.ts';
import { installCapture, removeCapture } from './nft.ts';
import { startOutboundListener } from './outbound.ts';
import { Tunnel } from './tunnel.ts';
import { TunnelKeeper } from './tunnel-keeper.ts';

const run = promisify(execFile);
const CLUSTER_DOMAIN = 'cluster.local';

async function routed(address: string): Promise<boolean> {
  return run('ip', ['route', 'get', address]).then(
    () => true,
    () => false,
  );
}

async function requireNamespace(kc: KubeConfig, namespace: string): Promise<void> {
  try {
    await kc.makeApiClient(CoreV1Api).readNamespace({ name: namespace });
  } catch (err) {
    if ((err as { code?: number }).code === 404) throw usageError(`namespace "${namespace}" not found`);
    throw err;
  }
}

export class Session {
  private constructor(
    private readonly connected: DaemonStatus,
    private readonly tunnel: TunnelKeeper,
    private readonly outbound: Server,
    private readonly dns: DnsServer,
    private readonly renewal: NodeJS.Timeout,
  ) {}

  static async open(req: ConnectRequest, log: Logger): Promise<Session> {
    const loaded = loadKubeConfig(req);
    const server = loaded.kc.getCurrentCluster()!.server;
    return Session.connect(req, loaded, log).catch((err: unknown) => {
      throw explainKubeError(err, server);
    });
  }

  private static async connect(req: ConnectRequest, loaded: LoadedKubeConfig, log: Logger): Promise<Session> {
    const { kc, context, namespace } = loaded;
    await requireNamespace(kc, namespace);
    const objects = managerObjects(readManagerBundle(), req.image, req.managerNamespace);
    const changed = await installManager(kc, objects);
    log.info({ changed }, 'traffic manager installed');
    const dial = async () => {
      const pod = await waitForManagerPod(
        kc,
        req.managerNamespace,
        objects.configMap.metadata!.name!,
        120_000,
      );
      return Tunnel.open(await openPortForward(kc, req.managerNamespace, pod, MANAGER_PORT));
    };
    const tunnel = await TunnelKeeper.start(dial, log);
    const subnets = applyProxyFlags(await discoverSubnets(kc), req.alsoProxy, req.neverProxy);
    const namespaces = new Set(
      (await kc.makeApiClient(CoreV1Api).listNamespace()).items.map((n) => n.metadata?.name ?? ''),
    );
    const nameservers = [...readFileSync('/etc/resolv.conf', 'utf8').matchAll(/^nameserver\s+(\S+)/gm)]
      .map((m) => m[1]!)
      .filter((ip) => isIPv4(ip));
    const upstream = nameservers[0] && (await routed(nameservers[0])) ? nameservers[0] : undefined;
    const dns = await startDnsServer({
      naming: { namespace, namespaces, domain: CLUSTER_DOMAIN },
      tunnel: () => tunnel.current,
      upstream,
      log,
    });
    const outbound = await startOutboundListener(() => tunnel.current, log);
    const apiHost = new URL(kc.getCurrentCluster()!.server).hostname;
    await installCapture({
      subnets,
      exclude: isIPv4(apiHost) ? [apiHost] : [],
      tcpPort: (outbound.address() as { port: number }).port,
      dns: nameservers.length
        ? { servers: nameservers, port: dns.port, upstreamSourcePort: dns.upstreamSourcePort }
        : undefined,
    });
    const renewal = setInterval(() => {
      tunnel.current
        .renewLease()
        .catch((err: Error) => log.warn({ err: err.message }, 'lease renewal failed'));
    }, 10_000);
    const status: DaemonStatus = {
      connected: true,
      daemonPid: process.pid,
      context,
      namespace,
      managerNamespace: req.managerNamespace,
      managerVersion: tunnel.current.managerVersion,
      subnets,
      dns: { mode: nameservers.length ? 'nft-redirect' : 'none', clusterDomain: CLUSTER_DOMAIN },
    };
    return new Session(status, tunnel, outbound, dns, renewal);
  }

  get status(): DaemonStatus {
    return { ...this.connected, reconnects: this.tunnel.reconnects };
  }

  async close(): Promise<void> {
    clearInterval(this.renewal);
    await removeCapture();
    this.dns.close();
    this.outbound.close();
    this.tunnel.close();
  }
}
