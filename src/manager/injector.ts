// How an injection is made in the cluster: the agent's ConfigMap, then either the workload's
// own template changed (a sidecar for `intercept`, the app container replaced for `replace`), a
// proxy Deployment standing in for a scaled-down one (`--swap-deployment`), or a new proxy
// Deployment and Service of the session's own (`run`, `--expose`) — each recorded for undo
// before it is made, and waited for until its agents are registered. On failure, everything is
// put back before the error is thrown.
import { randomUUID } from 'node:crypto';
import { usageError } from '../protocol/errors.ts';
import {
  MANAGED_BY,
  SESSION_LABEL,
  type AgentConfig,
  type AgentPort,
  type InterceptedPort,
} from '../protocol/intercept.ts';
import type { InterceptRequest } from '../protocol/requests.ts';
import { Bridges, numericTarget, type BridgedService } from './bridge-slices.ts';
import { requireServiceClaims } from './claims.ts';
import { replacementTemplate, type SidecarPlan } from './injection.ts';
import type { Injection } from './injection-registry.ts';
import type { Requester } from './intercepts.ts';
import type { KubeApi } from './kube-api.ts';
import { RELAY_LINGER_MS, type RelayPlan } from './relay.ts';
import { waitEndpointPorts, waitReady } from './rollout.ts';
import { samePort, type UndoBook, type UndoRecord } from './undo.ts';
import {
  findContainer,
  podSelector,
  servicePath,
  workloadPath,
  type FoundWorkload,
  type PodTemplate,
  type Service,
  type ServicePort,
} from './workloads.ts';

/** What an injection is, before its intercepts: registered by the caller's `track`. */
export type TrackedInjection = Pick<
  Injection,
  'key' | 'namespace' | 'name' | 'kind' | 'mode' | 'id' | 'agentPorts' | 'undo'
>;

export interface InjectorHooks {
  /** Registers the injection before its rollout, so that its agents can authenticate meanwhile. */
  track(spec: TrackedInjection): Injection;
  /** Forgets the injection and restores what its undo record names. */
  release(injection: Injection): Promise<void>;
}

/** A made injection and the ports a request gets of it. */
export interface Injected {
  injection: Injection;
  ports: InterceptedPort[];
}

/** The installer's settings for agents. */
export interface AgentSettings {
  agentBundle: string;
  /** How agents reach the manager, host:port. */
  managerAddress: string;
  agentImage: string;
}

type AgentBase = { image: string; configMap: string; config: Omit<AgentConfig, 'ports' | 'health'> };

/** A ReplicaSet's pods by label; one selecting with expressions only is refused (its pods could not be told). */
function replicaSetSelector(found: FoundWorkload): string {
  const selector = podSelector(found.object);
  if (!selector) {
    throw usageError(
      `ReplicaSet ${found.object.metadata?.name} selects its pods by expressions only; telepod needs matchLabels`,
    );
  }
  return selector;
}

function remotePort(value: string | undefined, local: number): number {
  const port = value === undefined ? local : Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw usageError(`"${value}" is not a port number (1-65535)`);
  }
  return port;
}

export class Injector {
  constructor(
    private readonly api: KubeApi,
    private readonly undo: UndoBook,
    private readonly options: AgentSettings,
    private readonly hooks: InjectorHooks,
  ) {}

  private agentBase(owner: string): AgentBase & { id: string } {
    const id = randomUUID();
    return {
      id,
      image: this.options.agentImage,
      configMap: `telepod-agent-${owner}`.slice(0, 253),
      config: { manager: this.options.managerAddress, injection: id },
    };
  }

  private configMapPath(namespace: string, name: string): string {
    return `/api/v1/namespaces/${namespace}/configmaps/${name}`;
  }

  private async createAgentConfigMap(namespace: string, name: string): Promise<void> {
    await this.api.remove(this.configMapPath(namespace, name)).catch(() => undefined);
    await this.api.create(`/api/v1/namespaces/${namespace}/configmaps`, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace, labels: MANAGED_BY },
      data: { 'agent.mjs': this.options.agentBundle },
    });
  }

  /** Changes the workload's own template (sidecar or replacement) and waits for its rollout. */
  async inject(
    found: FoundWorkload,
    key: string,
    request: InterceptRequest,
    session: Requester,
    services: Service[],
    build: (
      agent: AgentBase,
    ) => Pick<SidecarPlan, 'services'> & { template: PodTemplate; agentPorts: AgentPort[] },
    relay?: RelayPlan,
  ): Promise<Injection> {
    const { namespace } = request;
    const { id, ...agent } = this.agentBase(request.workload);
    const plan = build(agent);
    requireServiceClaims(
      session,
      namespace,
      services,
      plan.services.map((s) => s.name),
    );
    const path = workloadPath(namespace, found.resource, request.workload);
    const original = (name: string) => services.find((s) => s.metadata?.name === name)!.spec.ports ?? [];
    // Only the ports that move: another port's targetPort, changed meanwhile, stays as it is.
    const moved = plan.services.map((s) => ({
      name: s.name,
      ports: s.ports.filter(
        (p) => !original(s.name).some((o) => samePort(o, p) && o.targetPort === p.targetPort),
      ),
      agentTargets: s.agentTargets,
    }));
    const undo: UndoRecord = {
      workload: path,
      template: found.object.spec.template,
      services: plan.services.map((s) => ({ path: servicePath(namespace, s.name), ports: original(s.name) })),
      deletes: [this.configMapPath(namespace, agent.configMap)],
      ...(found.object.kind === 'ReplicaSet'
        ? {
            podsToRoll: {
              namespace,
              selector: replicaSetSelector(found),
              owner: found.object.metadata?.uid ?? '',
            },
          }
        : {}),
    };
    const mode = request.mode === 'replace' ? 'replace' : 'intercept';
    const injection = this.hooks.track({
      key,
      namespace,
      name: request.workload,
      kind: found.object.kind,
      mode,
      id,
      agentPorts: plan.agentPorts,
      undo,
    });
    try {
      relay?.start?.(injection);
      const bridges = await this.bridges(namespace, moved, services, relay);
      await this.createAgentConfigMap(namespace, agent.configMap);
      await this.undo.apply(undo, { template: plan.template });
      // Numeric targetPorts move to the agent's named ports now, before any new pod is ready:
      // the bridges keep the old pods in the Services meanwhile (see bridge-slices.ts).
      await bridges.refresh(new Set());
      await this.undo.pointServices(
        moved.map((s) => ({ path: servicePath(namespace, s.name), ports: s.ports })),
      );
      await waitReady(
        this.api,
        injection,
        path,
        found.object.kind,
        request,
        services.map((s) => s.metadata!.name!),
        (pods) => bridges.refresh(new Set(pods.map((p) => p.metadata!.name!))),
      );
      await bridges.close();
      void relay?.relays.close(RELAY_LINGER_MS);
      await waitEndpointPorts(
        this.api,
        namespace,
        moved.map((s) => ({ name: s.name, ports: s.agentTargets })),
        Date.now() + (request.timeoutSeconds ?? 120) * 1000,
      );
    } catch (err) {
      // Restoring deletes the relay slices: the relays serve until kube-proxy has followed.
      await this.hooks.release(injection).catch(() => undefined);
      void relay?.relays.close(RELAY_LINGER_MS);
      throw err;
    }
    return injection;
  }

  /**
   * The bridges of the Services' moved ports, at the numbers the old pods serve; of those, the
   * ports asked for get a relay for the rollout (none is asked for a port that does not move: a
   * named targetPort's old pods serve until the new are ready).
   */
  private async bridges(
    namespace: string,
    moved: { name: string; ports: ServicePort[] }[],
    services: Service[],
    relay: RelayPlan | undefined,
  ): Promise<Bridges> {
    const original = (name: string) => services.find((s) => s.metadata?.name === name)!.spec.ports ?? [];
    const relaying = async (service: string, port: ServicePort) => {
      const relayed = relay?.ports.find((r) => r.service === service && samePort(r.port, port));
      const listening = relayed && (await relay!.relays.open(relayed.route));
      return listening ? { relay: listening } : {};
    };
    const bridged: BridgedService[] = await Promise.all(
      moved.map(async (s) => ({
        name: s.name,
        uid: services.find((o) => o.metadata?.name === s.name)?.metadata?.uid,
        ports: await Promise.all(
          s.ports.map(async (p) => ({
            ...(p.name ? { name: p.name } : {}),
            ...(p.protocol ? { protocol: p.protocol } : {}),
            target: numericTarget(original(s.name).find((o) => samePort(o, p))!),
            ...(await relaying(s.name, p)),
          })),
        ),
      })),
    );
    return new Bridges(this.api, namespace, bridged, relay?.relays.address);
  }

  /** `--swap-deployment`: a proxy Deployment with the original's labels; the original scaled to 0. */
  async swap(
    found: FoundWorkload,
    key: string,
    request: InterceptRequest,
    session: Requester,
  ): Promise<Injected> {
    const original = found.object;
    if (original.kind !== 'Deployment') {
      throw usageError(`--swap-deployment needs a Deployment; ${request.workload} is a ${original.kind}`);
    }
    const container = findContainer(original, request.container).name;
    const remotes = request.ports.map((p) => remotePort(p.remote, p.local));
    const { namespace } = request;
    const proxyName = `telepod-swap-${request.workload}`.slice(0, 63);
    const { id, ...agent } = this.agentBase(proxyName);
    const plan = replacementTemplate(original.spec.template, container, remotes, agent);
    const swapLabel = { 'telepod.io/swap': request.workload };
    const proxyPath = workloadPath(namespace, 'deployments', proxyName);
    const originalPath = workloadPath(namespace, 'deployments', request.workload);
    const undo: UndoRecord = {
      workload: originalPath,
      replicas: original.spec.replicas ?? 1,
      services: [],
      deletes: [proxyPath, this.configMapPath(namespace, agent.configMap)],
    };
    const injection = this.hooks.track({
      key,
      namespace,
      name: request.workload,
      kind: 'Deployment',
      mode: 'swap',
      id,
      agentPorts: plan.agentPorts,
      undo,
    });
    try {
      await this.createAgentConfigMap(namespace, agent.configMap);
      await this.undo.apply(undo, {}); // records the undo before anything else
      await this.api.create(workloadPath(namespace, 'deployments'), {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: proxyName, namespace, labels: { ...MANAGED_BY, [SESSION_LABEL]: session.id } },
        spec: {
          replicas: 1,
          selector: { matchLabels: { ...original.spec.selector.matchLabels, ...swapLabel } },
          template: {
            ...plan.template,
            metadata: {
              ...plan.template.metadata,
              labels: { ...plan.template.metadata?.labels, ...swapLabel },
            },
          },
        },
      });
      await waitReady(this.api, injection, proxyPath, 'Deployment', request);
      await this.api.mergePatch(originalPath, { spec: { replicas: 0 } });
    } catch (err) {
      await this.hooks.release(injection).catch(() => undefined);
      throw err;
    }
    const ports = request.ports.map((p, i) => ({
      local: p.local,
      remote: String(remotes[i]),
      agentPort: remotes[i]!,
    }));
    return { injection, ports };
  }

  /**
   * `run` without a swap: a new proxy Deployment named after the session, and a Service for the
   * `--expose`d ports (none without): the pod a plain run takes its environment and volumes from.
   */
  async expose(request: InterceptRequest, session: Requester, name: string, key: string): Promise<Injected> {
    const { namespace } = request;
    const remotes = request.ports.map((p) => remotePort(p.remote, p.local));
    const { id, ...agent } = this.agentBase(name);
    const labels = { ...MANAGED_BY, [SESSION_LABEL]: session.id, 'telepod.io/expose': name };
    const plan = replacementTemplate({ metadata: { labels }, spec: { containers: [] } }, '', remotes, agent);
    const path = workloadPath(namespace, 'deployments', name);
    const service = remotes.length ? servicePath(namespace, name) : undefined;
    const undo: UndoRecord = {
      workload: path,
      services: [],
      deletes: [path, ...(service ? [service] : []), this.configMapPath(namespace, agent.configMap)],
    };
    const injection = this.hooks.track({
      key,
      namespace,
      name,
      kind: 'Deployment',
      mode: 'expose',
      id,
      agentPorts: plan.agentPorts,
      undo,
    });
    try {
      await this.createAgentConfigMap(namespace, agent.configMap);
      await this.api.create(workloadPath(namespace, 'deployments'), {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name, namespace, labels, annotations: this.undo.annotations(undo) },
        spec: { replicas: 1, selector: { matchLabels: labels }, template: plan.template },
      });
      if (service) {
        await this.api.create(servicePath(namespace), {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name, namespace, labels },
          spec: {
            selector: labels,
            ports: remotes.map((port) => ({ name: `tcp-${port}`, port, targetPort: port })),
          },
        });
      }
      await waitReady(this.api, injection, path, 'Deployment', { ...request, workload: name });
    } catch (err) {
      await this.hooks.release(injection).catch(() => undefined);
      throw err;
    }
    const ports = request.ports.map((p, i) => ({
      local: p.local,
      remote: `${name}:${remotes[i]}`,
      agentPort: remotes[i]!,
    }));
    return { injection, ports };
  }
}
