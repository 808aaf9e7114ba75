// One connected session of the daemon: manager ready, tunnel open, subnets known, outbound
// listener, DNS server and capture rules in place, and the intercepts' volume mounts. `close`
// undoes all of it.
import type { KubeConfig } from '@kubernetes/client-node';
import { isIPv4, type Server } from 'node:net';
import type { Logger } from 'pino';
import { kubeConfigFromText, type LoadedKubeConfig } from '../kube/config.ts';
import { runPluginsAs, sudoUser } from '../kube/credential-plugins.ts';
import { writeClaims } from '../kube/claims.ts';
import { explainKubeError } from '../kube/errors.ts';
import { listWorkloads } from '../kube/workload-list.ts';
import { followRollout, type RolloutFollower } from '../kube/rollout-progress.ts';
import { applyProxyFlags } from '../kube/subnets.ts';
import type {
  ConnectRequest,
  DaemonInterceptRequest,
  DaemonStatus,
  LeaveRequest,
  ProgressStep,
} from '../protocol/daemon-api.ts';
import { TelepodError, usageError } from '../protocol/errors.ts';
import {
  DORMANT_AGENT_MINUTES,
  type InterceptHealth,
  type InterceptInfo,
  type PodContext,
  type WorkloadInfo,
} from '../protocol/intercept.ts';
import { MANAGER_PATHS } from '../protocol/paths.ts';
import type { LeaveAnswer } from '../protocol/requests.ts';
import { startDnsServer, type DnsServer } from './dns.ts';
import { InboundHandler } from './inbound.ts';
import { inSubnets, machineNameservers, routed } from './machine-network.ts';
import { installCapture, removeCapture } from './nft.ts';
import { startOutboundListener } from './outbound.ts';
import { createPodPath, type PodPathSession } from './pod-path.ts';
import { Mounts } from './mounts.ts';
import { openNamespace, type Namespace } from './rootless/namespace.ts';
import type { TunnelKeeper, TunnelState } from './tunnel-keeper.ts';
import { openManagerTunnel } from './manager-tunnel.ts';

const CLUSTER_DOMAIN = 'cluster.local';

/** How long `status` waits for the manager's view of the intercepts. */
const HEALTH_TIMEOUT_MS = 2_000;

export class Session {
  /** Intercepts this session left with their agent kept (by namespace/workload), for `leave --restore`. */
  private readonly leftDormant = new Map<string, InterceptInfo>();
  /** The last intercept's claims being taken back (after its answer); awaited before new ones. */
  private releasingClaims: Promise<void> = Promise.resolve();

  private constructor(
    private readonly connected: DaemonStatus,
    private readonly tunnel: TunnelKeeper,
    private readonly outbound: Server,
    /** Connections straight to pods: their port-forwards end with the session. */
    private readonly pods: PodPathSession,
    private readonly dns: DnsServer,
    private readonly renewal: NodeJS.Timeout,
    private readonly inbound: InboundHandler,
    private readonly mounts: Mounts,
    /** Intercepts the manager no longer had when the tunnel came back, and why. */
    private readonly lost: Map<string, string>,
    private readonly log: Logger,
    /** The developer's own credentials: claims and listings go to the API server as them. */
    private readonly kc: KubeConfig,
    /** What connecting found worth telling the developer (e.g. a manager of another version kept). */
    readonly notices: string[],
    /** A rootless daemon's network namespace; a root daemon captures in its own. */
    private readonly namespace: Namespace | undefined,
  ) {}

  /** Connects; `step` hears of each step as it begins (see the CLI's progress). */
  static async open(
    req: ConnectRequest,
    log: Logger,
    step: ProgressStep,
    rootless = false,
  ): Promise<Session> {
    const loaded = kubeConfigFromText(req.kubeconfig, req);
    runPluginsAs(loaded.kc, req.env, sudoUser());
    const server = loaded.kc.getCurrentCluster()!.server;
    // Made first: a machine without user namespaces fails before anything changed.
    if (rootless) step('making a network namespace for the command');
    const namespace = rootless ? await openNamespace(log) : undefined;
    return Session.connect(req, loaded, log, step, namespace).catch((err: unknown) => {
      namespace?.close();
      throw explainKubeError(err, server);
    });
  }

  private static async connect(
    req: ConnectRequest,
    loaded: LoadedKubeConfig,
    log: Logger,
    step: ProgressStep,
    ns: Namespace | undefined,
  ): Promise<Session> {
    const { kc, context, namespace } = loaded;
    const { tunnel, notices } = await openManagerTunnel(req, kc, log, step);
    const inbound = new InboundHandler(log, ns ? (port) => ns.connect(port) : undefined);
    const mounts = new Mounts(log, () => tunnel.current);
    const lost = new Map<string, string>();
    inbound.follow(tunnel.current);
    tunnel.onTunnel = (next, resumed) => {
      inbound.follow(next);
      if (resumed) return;
      // A new session: the manager had let the old one expire and undone its intercepts.
      for (const info of inbound.all) {
        lost.set(
          info.id,
          'the traffic manager ended this session while the tunnel was down (its lease expired) and restored ' +
            `${info.workload}: leave it and intercept again`,
        );
      }
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
    step('routing the cluster subnets and DNS names here');
    const subnets = applyProxyFlags(cluster.subnets, req.alsoProxy, req.neverProxy);
    const namespaces = new Set(cluster.namespaces);
    const nameservers = machineNameservers();
    // A rootless daemon asks the resolver from the machine's namespace, which nothing captures.
    const upstream = nameservers[0] && (ns || (await routed(nameservers[0]))) ? nameservers[0] : undefined;
    const pods = createPodPath(kc, CLUSTER_DOMAIN, log);
    const dns = await startDnsServer({
      naming: { namespace, namespaces, domain: CLUSTER_DOMAIN },
      tunnel: () => tunnel.current,
      upstream,
      socket: ns?.dns,
      onClusterAnswer: (answer) => pods.learn(answer),
      log,
    });
    const forCluster = inSubnets(subnets);
    const apiHost = new URL(kc.getCurrentCluster()!.server).hostname;
    // The API server (its address as the kubeconfig names it) is reached directly, never
    // through the tunnel, also by kubectl in the command.
    const outbound = await startOutboundListener(
      () => tunnel.current,
      log,
      ns
        ? { server: ns.tcp, direct: (host) => host === apiHost || !forCluster(host), pods: pods.path }
        : { pods: pods.path },
    );
    if (!ns) {
      await installCapture({
        subnets,
        exclude: isIPv4(apiHost) ? [apiHost] : [],
        tcpPort: (outbound.address() as { port: number }).port,
        dns: nameservers.length
          ? { servers: nameservers, port: dns.port, upstreamSourcePort: dns.upstreamSourcePort }
          : undefined,
      });
    }
    // Four renewals per lease: a session outlives three lost ones.
    const renewal = setInterval(
      () => {
        tunnel.current
          .renewLease()
          .catch((err: Error) => log.warn({ err: err.message }, 'lease renewal failed'));
      },
      (tunnel.current.grant.leaseSeconds * 1000) / 4,
    );
    const status: DaemonStatus = {
      connected: true,
      daemonPid: process.pid,
      context,
      namespace,
      managerNamespace: req.managerNamespace,
      managerVersion: tunnel.current.managerVersion,
      subnets,
      dns: {
        mode: ns ? 'namespace' : nameservers.length ? 'nft-redirect' : 'none',
        clusterDomain: CLUSTER_DOMAIN,
      },
      ...(ns ? { rootless: { namespacePid: ns.pid } } : {}),
    };
    return new Session(
      status,
      tunnel,
      outbound,
      pods,
      dns,
      renewal,
      inbound,
      mounts,
      lost,
      log,
      kc,
      notices,
      ns,
    );
  }

  /** The session now; each intercept says whether cluster traffic reaches it, and if not, why. */
  async status(): Promise<DaemonStatus> {
    const tunnel = this.tunnel.state;
    return {
      ...this.connected,
      reconnects: this.tunnel.reconnects,
      tunnel,
      podConnections: { ...this.pods.counts },
      intercepts: await this.interceptStatus(tunnel),
    };
  }

  private async interceptStatus(tunnel: TunnelState): Promise<InterceptInfo[]> {
    const all = this.inbound.all;
    if (!all.length) return [];
    let problemOf: (id: string) => string | undefined;
    if (!tunnel.up) {
      const down = ((Date.now() - tunnel.downSince!) / 1000).toFixed(0);
      const why = tunnel.lastError ? ` (last attempt: ${tunnel.lastError})` : '';
      problemOf = () => `the tunnel to the traffic manager is down for ${down} s; reconnecting${why}`;
    } else {
      const health = await this.tunnel.current
        .call<InterceptHealth[]>(MANAGER_PATHS.interceptHealth, {}, HEALTH_TIMEOUT_MS)
        .then((list) => new Map(list.map((h) => [h.id, h])))
        .catch((err: Error) => err.message);
      problemOf = (id) => {
        if (typeof health === 'string') return `cannot ask the traffic manager: ${health}`;
        const known = health.get(id);
        return known ? known.problem : 'the traffic manager no longer holds this intercept';
      };
    }
    return all.map((info) => {
      const problem = this.lost.get(info.id) ?? problemOf(info.id);
      const volumes = this.mounts.volumes(info.id) ?? info.volumes;
      return {
        ...info,
        ...(volumes ? { volumes } : {}),
        effective: !problem,
        ...(problem ? { problem } : {}),
      };
    });
  }

  /** Intercepts; `step` hears of each step (the rollout as it goes, the mount) as it begins. */
  async intercept({ mount, ...asked }: DaemonInterceptRequest, step: ProgressStep): Promise<InterceptInfo> {
    const request = { ...asked, namespace: asked.namespace ?? this.connected.namespace! };
    const tunnel = this.tunnel.current;
    // A claim of the same session on the same object must not be taken back after it is made.
    await this.releasingClaims;
    // The developer's own rights decide: the claims are written with their kubeconfig. The
    // manager rolls the workload out; its progress is watched here, as the developer, from a
    // first read made meanwhile.
    const [claimed, following] = await Promise.allSettled([
      writeClaims(this.kc, request, tunnel.grant),
      request.workload ? followRollout(this.kc, request.namespace, request.workload, step) : undefined,
    ]);
    const rollout: RolloutFollower | undefined =
      following.status === 'fulfilled' ? following.value : undefined;
    if (claimed.status === 'rejected') {
      rollout?.stop();
      throw claimed.reason;
    }
    if (following.status === 'rejected') {
      await claimed.value.release();
      throw following.reason;
    }
    const claims = claimed.value;
    step(`asking the traffic manager for ${request.workload || 'a proxy pod'}`);
    let info: InterceptInfo;
    // A cold whole-port intercept's connections may come before its answer (relays), served at
    // once if the local ports accept already; else (`-- cmd` starts the server) the old pods serve.
    const locals = request.ports.map((p) => p.local);
    const whole = request.mode === 'intercept' && !request.filter && !request.mirror;
    const earlyInbound = whole && (await this.inbound.accepting(locals));
    const expected = this.inbound.expect(earlyInbound ? locals : []);
    try {
      info = await tunnel.call<InterceptInfo>(MANAGER_PATHS.intercepts, { ...request, earlyInbound });
    } catch (err) {
      expected();
      await claims.release();
      throw err;
    } finally {
      rollout?.stop();
    }
    // The manager has read the claims: they are taken back while the answer goes out (after
    // any earlier intercept's, so that a later claim waits for all of them).
    this.releasingClaims = Promise.all([this.releasingClaims, claims.release()]).then(() => undefined);
    // Connections come as soon as the manager has answered: known before the mount, which
    // takes a while (a connection for an intercept the daemon did not know yet was reset).
    this.inbound.add(info);
    expected();
    if (mount) {
      step("mounting the pod's volumes");
      // The intercept stands either way: a mount that fails is a warning, as one refused is.
      info.volumes = await this.mounts.mount(info.id, mount).catch((err: Error) => ({
        warning: `volumes not mounted: ${err.message}`,
      }));
      if (!this.inbound.all.some((i) => i.id === info.id)) {
        throw new TelepodError(`the intercept of ${info.workload} was left while its volumes were mounted`);
      }
    }
    return info;
  }

  async leave(request: LeaveRequest): Promise<InterceptInfo> {
    const namespace = request.namespace ?? this.connected.namespace;
    const info = this.inbound.all.find((i) =>
      request.id ? i.id === request.id : i.workload === request.name && i.namespace === namespace,
    );
    const dormant = `${namespace}/${request.name}`;
    if (!info && request.restore && this.leftDormant.has(dormant)) {
      // Left earlier with its agent kept: restore it now (a no-op if it was intercepted again).
      await this.tunnel.current.call(MANAGER_PATHS.restore, { namespace, workload: request.name });
      const left = this.leftDormant.get(dormant)!;
      this.leftDormant.delete(dormant);
      return left;
    }
    if (!info) {
      const names = this.inbound.all.map((i) => `${i.workload} (${i.namespace})`).join(', ') || 'none';
      throw usageError(
        `no intercept of ${request.name ?? request.id} in namespace ${namespace} (intercepts: ${names})`,
      );
    }
    await this.mounts.unmount(info.id);
    let dormantSeconds: number | undefined;
    if (!this.lost.delete(info.id)) {
      const answer = await this.tunnel.current.call<LeaveAnswer>(MANAGER_PATHS.leave, {
        id: info.id,
        ...(request.restore ? { restore: true } : {}),
      });
      if (typeof answer.dormantSeconds === 'number') {
        dormantSeconds = answer.dormantSeconds;
      } else if (answer.agent === undefined && info.mode === 'intercept' && !request.restore) {
        dormantSeconds = DORMANT_AGENT_MINUTES * 60; // an earlier manager's only choice
      }
    }
    this.inbound.remove(info.id);
    const key = `${info.namespace}/${info.workload}`;
    if (dormantSeconds === undefined) {
      this.leftDormant.delete(key);
      return info;
    }
    this.leftDormant.set(key, info);
    return { ...info, dormantSeconds };
  }

  context(id: string): Promise<PodContext> {
    return this.tunnel.current.call<PodContext>(MANAGER_PATHS.podContext, { id });
  }

  list(namespace?: string): Promise<WorkloadInfo[]> {
    return listWorkloads(this.kc, namespace ?? this.connected.namespace!);
  }

  async close(): Promise<void> {
    clearInterval(this.renewal);
    // An API server that does not answer must not hold up the quit: a claim left behind names an
    // ended session and proves nothing without its token (claim objects the manager sweeps).
    await Promise.race([this.releasingClaims, new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
    await this.mounts.unmountAll();
    // Ending the session makes the manager restore what its intercepts changed.
    await this.tunnel.current
      .end()
      .catch((err: Error) =>
        this.log.warn({ err: err.message }, 'ending the session failed; its lease will expire'),
      );
    if (this.namespace) this.namespace.close();
    else await removeCapture();
    this.dns.close();
    this.outbound.close();
    this.pods.close();
    this.tunnel.close();
  }
}
