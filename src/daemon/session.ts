// One connected session of the daemon: manager ready, tunnel open, subnets known, outbound
// listener, DNS server and capture rules in place, and the intercepts' volume mounts. `close`
// undoes all of it.
import type { KubeConfig } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { isIPv4, type Server } from 'node:net';
import { hostname } from 'node:os';
import { promisify } from 'node:util';
import type { Logger } from 'pino';
import { loadKubeConfig, type LoadedKubeConfig } from '../kube/config.ts';
import { writeClaims } from '../kube/claims.ts';
import { explainKubeError } from '../kube/errors.ts';
import { listWorkloads } from '../kube/workload-list.ts';
import {
  ensureManager,
  managerObjects,
  readManagerBundle,
  waitForManagerPod,
} from '../kube/manager-install.ts';
import { openPortForward } from '../kube/portforward.ts';
import { applyProxyFlags } from '../kube/subnets.ts';
import type {
  ConnectRequest,
  DaemonInterceptRequest,
  DaemonStatus,
  LeaveRequest,
} from '../protocol/daemon-api.ts';
import { usageError } from '../protocol/errors.ts';
import type { InterceptInfo, PodContext, WorkloadInfo } from '../protocol/intercept.ts';
import { MANAGER_PATHS, MANAGER_PORT } from '../protocol/paths.ts';
import { startDnsServer, type DnsServer } from './dns.ts';
import { InboundHandler } from './inbound.ts';
import type { Mounts } from './mounts.ts';
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

/** After a reconnect: each intercept's volumes again, over the new tunnel (the old streams ended). */
async function remountVolumes(tunnel: Tunnel, inbound: InboundHandler, mounts: Mounts): Promise<void> {
  for (const info of inbound.all) {
    const volumes = await mounts.remount(info.id, tunnel);
    if (volumes) info.volumes = volumes;
  }
}

/** Who holds this session's intercepts, as other developers see it. */
function holder(): string {
  return `${process.env.SUDO_USER ?? process.env.USER ?? 'root'}@${hostname()}`;
}

export class Session {
  private constructor(
    private readonly connected: DaemonStatus,
    private readonly tunnel: TunnelKeeper,
    private readonly outbound: Server,
    private readonly dns: DnsServer,
    private readonly renewal: NodeJS.Timeout,
    private readonly inbound: InboundHandler,
    private readonly mounts: Mounts,
    private readonly log: Logger,
    /** The developer's own credentials: claims and listings go to the API server as them. */
    private readonly kc: KubeConfig,
  ) {}

  static async open(req: ConnectRequest, mounts: Mounts, log: Logger): Promise<Session> {
    const loaded = loadKubeConfig(req);
    const server = loaded.kc.getCurrentCluster()!.server;
    return Session.connect(req, loaded, mounts, log).catch((err: unknown) => {
      throw explainKubeError(err, server);
    });
  }

  private static async connect(
    req: ConnectRequest,
    loaded: LoadedKubeConfig,
    mounts: Mounts,
    log: Logger,
  ): Promise<Session> {
    const { kc, context, namespace } = loaded;
    const objects = managerObjects(readManagerBundle(), req.image, req.managerNamespace, req.namespaces);
    const version = await ensureManager(kc, objects, (message) => log.warn(message));
    const dial = async (resumeToken?: string) => {
      const pod = await waitForManagerPod(kc, req.managerNamespace, version, 120_000);
      const transport = await openPortForward(kc, req.managerNamespace, pod, MANAGER_PORT);
      return Tunnel.open(transport, { holder: holder(), ...(resumeToken ? { resumeToken } : {}) });
    };
    const tunnel = await TunnelKeeper.start(dial, log);
    const inbound = new InboundHandler(log);
    inbound.follow(tunnel.current);
    tunnel.onTunnel = (next) => {
      inbound.follow(next);
      void remountVolumes(next, inbound, mounts);
    };
    // What to route and which names are namespaces, as the manager found them: nothing
    // cluster-wide is asked of the developer.
    const cluster = await tunnel.current.clusterInfo().catch(async (err: unknown) => {
      await tunnel.current.end().catch(() => undefined);
      tunnel.close();
      throw err;
    });
    if (!cluster.namespaces.includes(namespace)) {
      await tunnel.current.end().catch(() => undefined);
      tunnel.close();
      throw usageError(`namespace "${namespace}" not found among those the traffic manager serves`);
    }
    const subnets = applyProxyFlags(cluster.subnets, req.alsoProxy, req.neverProxy);
    const namespaces = new Set(cluster.namespaces);
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
    return new Session(status, tunnel, outbound, dns, renewal, inbound, mounts, log, kc);
  }

  get status(): DaemonStatus {
    return { ...this.connected, reconnects: this.tunnel.reconnects, intercepts: this.inbound.all };
  }

  async intercept({ mount, ...asked }: DaemonInterceptRequest): Promise<InterceptInfo> {
    const request = { ...asked, namespace: asked.namespace ?? this.connected.namespace! };
    const tunnel = this.tunnel.current;
    // The developer's own rights decide: the claims are written with their kubeconfig.
    const claims = await writeClaims(this.kc, request, tunnel.grant);
    let info: InterceptInfo;
    try {
      info = await tunnel.call<InterceptInfo>(MANAGER_PATHS.intercepts, request);
    } finally {
      await claims.release();
    }
    if (mount) info.volumes = await this.mounts.mount(info.id, this.tunnel.current, mount);
    this.inbound.add(info);
    return info;
  }

  async leave(request: LeaveRequest): Promise<InterceptInfo> {
    const namespace = request.namespace ?? this.connected.namespace;
    const info = this.inbound.all.find((i) =>
      request.id ? i.id === request.id : i.workload === request.name && i.namespace === namespace,
    );
    if (!info) {
      const names = this.inbound.all.map((i) => `${i.workload} (${i.namespace})`).join(', ') || 'none';
      throw usageError(
        `no intercept of ${request.name ?? request.id} in namespace ${namespace} (intercepts: ${names})`,
      );
    }
    await this.mounts.unmount(info.id);
    await this.tunnel.current.call(MANAGER_PATHS.leave, { id: info.id });
    this.inbound.remove(info.id);
    return info;
  }

  context(id: string): Promise<PodContext> {
    return this.tunnel.current.call<PodContext>(MANAGER_PATHS.podContext, { id });
  }

  list(namespace?: string): Promise<WorkloadInfo[]> {
    return listWorkloads(this.kc, namespace ?? this.connected.namespace!);
  }

  async close(): Promise<void> {
    clearInterval(this.renewal);
    await this.mounts.unmountAll();
    // Ending the session makes the manager restore what its intercepts changed.
    await this.tunnel.current
      .end()
      .catch((err: Error) =>
        this.log.warn({ err: err.message }, 'ending the session failed; its lease will expire'),
      );
    await removeCapture();
    this.dns.close();
    this.outbound.close();
    this.tunnel.close();
  }
}
