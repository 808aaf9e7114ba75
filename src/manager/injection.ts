// How a pod template changes so that the agent receives a workload's traffic, as pure
// functions over the objects (unit-tested): the sidecar plan for `intercept`, and the
// container swap used by `replace`, `swap` and `expose`. No NET_ADMIN, no privileged pods:
// a Service that targets a port by name gets it from the agent by renaming; one that targets a
// number is pointed at the agent's port by a name of its own (and pointed back on restore).
import {
  AGENT_AUDIENCE,
  AGENT_CONTAINER,
  AGENT_CONFIG_ENV,
  AGENT_TOKEN_DIR,
  type AgentConfig,
  type AgentPort,
} from '../protocol/intercept.ts';
import { LEAN_NODE_FLAGS } from '../protocol/node-flags.ts';
import type { Container, ContainerPort, PodTemplate, Service, ServicePort, Workload } from './workloads.ts';
import { targetOf } from './workloads.ts';

const BUNDLE_VOLUME = 'telepod-agent-bundle';
const BUNDLE_DIR = '/opt/telepod-agent';
const TOKEN_VOLUME = 'telepod-agent-token';
/** The shortest lifetime the API server grants a projected token; the kubelet renews it at 80 %. */
const TOKEN_SECONDS = 600;
/** Agent ports of a sidecar start here, skipping any port the pod declares. */
const FIRST_AGENT_PORT = 19000;

export interface AgentSpec {
  image: string;
  configMap: string;
  config: AgentConfig;
  ports: ContainerPort[];
  /** Copied from a replaced container so that env and mounts stay what the app had. */
  inherit?: Container;
}

export function agentContainer(spec: AgentSpec): Container {
  const inherited = spec.inherit ?? { name: '' };
  return {
    name: AGENT_CONTAINER,
    image: spec.image,
    imagePullPolicy: 'IfNotPresent',
    command: ['node', ...LEAN_NODE_FLAGS, `${BUNDLE_DIR}/agent.mjs`],
    ...(spec.ports.length ? { ports: spec.ports } : {}),
    env: [
      ...((inherited.env as unknown[] | undefined) ?? []),
      { name: AGENT_CONFIG_ENV, value: JSON.stringify(spec.config) },
    ],
    ...(inherited.envFrom ? { envFrom: inherited.envFrom } : {}),
    volumeMounts: [
      ...((inherited.volumeMounts as unknown[] | undefined) ?? []),
      { name: BUNDLE_VOLUME, mountPath: BUNDLE_DIR, readOnly: true },
      { name: TOKEN_VOLUME, mountPath: AGENT_TOKEN_DIR, readOnly: true },
    ],
    // The health port opens once the agent is registered with the manager. Probing an
    // intercepted port instead would send the kubelet's probes to the workstation.
    readinessProbe: { tcpSocket: { port: spec.config.health }, periodSeconds: 1 },
    // What the Pod Security "restricted" level asks of a container, so that the agent is
    // admitted wherever the app is.
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 1000,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
}

/**
 * The volume mount paths of a running agent container: the app's (inherited) and the ones
 * admission added (the service-account token), without the agent's own bundle and credential.
 */
export function volumeMountPaths(container: Container): string[] {
  const mounts = (container.volumeMounts as { mountPath: string }[] | undefined) ?? [];
  return mounts.map((m) => m.mountPath).filter((p) => p !== BUNDLE_DIR && p !== AGENT_TOKEN_DIR);
}

function withAgentVolume(template: PodTemplate, configMap: string): PodTemplate['spec'] {
  return {
    ...template.spec,
    volumes: [
      ...(template.spec.volumes ?? []),
      { name: BUNDLE_VOLUME, configMap: { name: configMap } },
      // The agent's credential towards the manager: bound to the pod, for telepod's audience only.
      {
        name: TOKEN_VOLUME,
        projected: {
          sources: [
            {
              serviceAccountToken: {
                audience: AGENT_AUDIENCE,
                expirationSeconds: TOKEN_SECONDS,
                path: 'token',
              },
            },
          ],
        },
      },
    ],
  };
}

/** The first port from `from` up that the pod does not use. */
function freePort(used: Set<number>, from = FIRST_AGENT_PORT): number {
  let port = from;
  while (used.has(port)) port++;
  used.add(port);
  return port;
}

function declaredPorts(template: PodTemplate): Set<number> {
  return new Set(template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.containerPort)));
}

export interface SidecarPlan {
  template: PodTemplate;
  /**
   * Services whose numeric targetPorts move to the agent, by the name of its port (pods without
   * the agent drop out of those ports): the new port lists and the agent ports they reach.
   */
  services: { name: string; ports: ServicePort[]; agentTargets: number[] }[];
  /** Every port the agent listens on, and the app port behind it. */
  agentPorts: Required<AgentPort>[];
}

/** How long an app container of a pod with the agent waits before it is sent SIGTERM. */
export const APP_SHUTDOWN_DELAY_SECONDS = 3;

/**
 * Whether app containers of a template with the agent get a preStop pause: the API server must
 * know the `sleep` action (Kubernetes ≥ 1.30; an older one drops it and refuses the empty hook),
 * and the pod's grace period must leave the app time after it (the API server refuses a pause
 * longer than the grace period).
 */
export function pausesBeforeShutdown(template: PodTemplate, serverHasSleep: boolean): boolean {
  const grace = (template.spec.terminationGracePeriodSeconds as number | undefined) ?? 30;
  return serverHasSleep && grace > 2 * APP_SHUTDOWN_DELAY_SECONDS;
}

/**
 * The app container, in a pod with the agent, with a preStop pause unless it has a preStop of
 * its own: when such a pod goes (the restore's rollout), kube-proxy takes a moment to stop
 * sending it connections, and an app that exits on SIGTERM at once would refuse them. Pods of
 * the workload without the agent are the app's own, as they were.
 */
function withShutdownDelay(container: Container): Container {
  const lifecycle = (container.lifecycle ?? {}) as Record<string, unknown>;
  if (lifecycle.preStop) return { ...container };
  return {
    ...container,
    lifecycle: { ...lifecycle, preStop: { sleep: { seconds: APP_SHUTDOWN_DELAY_SECONDS } } },
  };
}

/**
 * The name of agent port `port` when a Service's numeric targetPort moves to it: a named
 * targetPort reaches only pods that declare the name, so the workload's old pods drop out of it.
 */
export function agentPortName(port: number): string {
  return `telepod-${port}`;
}

/** A container port name for the app's renamed port (names are at most 15 characters). */
function renamed(name: string): string {
  return `tp-${name}`.slice(0, 15);
}

function renameProbePorts(container: Container, from: string, to: string): Container {
  const probes = ['livenessProbe', 'readinessProbe', 'startupProbe'] as const;
  const copy: Container = { ...container };
  for (const key of probes) {
    const probe = container[key] as Record<string, { port?: unknown }> | undefined;
    if (!probe) continue;
    copy[key] = Object.fromEntries(
      Object.entries(probe).map(([k, v]) =>
        v && typeof v === 'object' && v.port === from ? [k, { ...v, port: to }] : [k, v],
      ),
    );
  }
  return copy;
}

/**
 * The sidecar plan: the agent takes over every TCP port the Services send traffic to, so a later
 * intercept of another port of the same workload needs no new rollout. `app` names the
 * container whose environment and mounts the agent shares.
 */
export function sidecarPlan(
  workload: Workload,
  services: Service[],
  agent: Omit<AgentSpec, 'ports' | 'config'> & { config: Omit<AgentConfig, 'ports' | 'health'> },
  app: string,
  /** The API server takes a preStop `sleep` (see pausesBeforeShutdown). */
  serverHasSleep = false,
): SidecarPlan {
  const pause = pausesBeforeShutdown(workload.spec.template, serverHasSleep);
  const used = declaredPorts(workload.spec.template);
  // Nor a number whose agentPortName a container already declares.
  for (const container of workload.spec.template.spec.containers) {
    for (const p of container.ports ?? []) {
      const taken = /^telepod-(\d+)$/.exec(p.name ?? '');
      if (taken) used.add(Number(taken[1]));
    }
  }
  const agentPortOf = new Map<number, number>();
  const namedTargets = new Map<string, number>();
  const allocate = (appPort: number) => {
    let port = agentPortOf.get(appPort);
    if (port === undefined) {
      port = freePort(used);
      agentPortOf.set(appPort, port);
    }
    return port;
  };
  const tcpPorts = (service: Service) =>
    (service.spec.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP');
  // Named targets first: an agent port that takes over a name is known by that name to all.
  for (const p of services.flatMap(tcpPorts)) {
    const target = targetOf(workload, p);
    const agentPort = allocate(target.number);
    if (target.name) namedTargets.set(target.name, agentPort);
  }
  const nameOf = new Map([...namedTargets].map(([name, port]) => [port, name]));
  const patchedServices: SidecarPlan['services'] = [];
  for (const service of services) {
    const agentTargets: number[] = [];
    const ports = (service.spec.ports ?? []).map((p) => {
      if ((p.protocol ?? 'TCP') !== 'TCP') return p;
      const target = targetOf(workload, p);
      if (target.name) return p;
      const agentPort = allocate(target.number);
      if (!nameOf.has(agentPort)) nameOf.set(agentPort, agentPortName(agentPort));
      agentTargets.push(agentPort);
      return { ...p, targetPort: nameOf.get(agentPort)! };
    });
    if (agentTargets.length) patchedServices.push({ name: service.metadata!.name!, ports, agentTargets });
  }
  const containers = workload.spec.template.spec.containers.map((container) => {
    let copy: Container = pause ? withShutdownDelay(container) : { ...container };
    for (const [name] of namedTargets) {
      if (!copy.ports?.some((p) => p.name === name)) continue;
      copy = renameProbePorts(copy, name, renamed(name));
      copy.ports = copy.ports!.map((p) => (p.name === name ? { ...p, name: renamed(name) } : p));
    }
    return copy;
  });
  const agentPorts = [...agentPortOf].map(([forward, listen]) => ({ listen, forward }));
  // The sidecar gets the app container's env sources and mounts, so that the kubelet resolves
  // them for it too and it can report them (#6).
  const inherit = workload.spec.template.spec.containers.find((c) => c.name === app);
  const sidecar = agentContainer({
    ...agent,
    ...(inherit ? { inherit } : {}),
    config: { ...agent.config, ports: agentPorts, health: freePort(used) },
    ports: agentPorts.map(({ listen }) => ({
      ...(nameOf.has(listen) ? { name: nameOf.get(listen)! } : {}),
      containerPort: listen,
    })),
  });
  return {
    template: {
      ...workload.spec.template,
      spec: {
        ...withAgentVolume(workload.spec.template, agent.configMap),
        containers: [...containers, sidecar],
      },
    },
    services: patchedServices,
    agentPorts,
  };
}

/**
 * The template with `container` replaced by the agent, which declares the same ports (plus
 * `extraPorts`) and inherits its env and mounts: used by replace, swap and expose.
 */
export function replacementTemplate(
  template: PodTemplate,
  container: string,
  extraPorts: number[],
  agent: Omit<AgentSpec, 'ports' | 'config' | 'inherit'> & { config: Omit<AgentConfig, 'ports' | 'health'> },
): { template: PodTemplate; agentPorts: AgentPort[] } {
  const replaced = template.spec.containers.find((c) => c.name === container);
  const ports: ContainerPort[] = [...(replaced?.ports ?? [])].filter((p) => (p.protocol ?? 'TCP') === 'TCP');
  for (const port of extraPorts) {
    if (!ports.some((p) => p.containerPort === port)) ports.push({ containerPort: port });
  }
  const agentPorts = ports.map((p) => ({ listen: p.containerPort }));
  const used = new Set([...declaredPorts(template), ...extraPorts]);
  const sidecar = agentContainer({
    ...agent,
    config: { ...agent.config, ports: agentPorts, health: freePort(used) },
    ports,
    ...(replaced ? { inherit: replaced } : {}),
  });
  const containers = template.spec.containers.map((c) => (c.name === container ? sidecar : c));
  if (!replaced) containers.push(sidecar);
  return {
    template: { ...template, spec: { ...withAgentVolume(template, agent.configMap), containers } },
    agentPorts,
  };
}
