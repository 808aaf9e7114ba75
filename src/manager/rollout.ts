// Waiting for an injection's rollout: the workload rolled out, every new pod's agent
// registered, the Services' EndpointSlices routing only to the injection's pods — or failing
// early with the kubelet's reason when a pod cannot start.
import { TelepodError } from '../protocol/errors.ts';
import { BRIDGE_MANAGER, SLICE_MANAGER_LABEL } from './bridge-slices.ts';
import { FAILING_WAIT_REASONS } from '../protocol/pod-failures.ts';
import { AGENT_CONFIG_ENV, AGENT_CONTAINER, type AgentConfig } from '../protocol/intercept.ts';
import type { InterceptRequest } from '../protocol/requests.ts';
import type { KubeApi, KubeObject } from './kube-api.ts';
import { podSelector, type Container, type Workload } from './workloads.ts';

/** What a rollout is waited for: the injection's namespace, id and registered agents. */
export interface RolloutTarget {
  namespace: string;
  id: string;
  agents: { size: number };
}

/** A pod as the manager reads it. */
export interface Pod extends KubeObject {
  spec: { containers: (Container & { env?: { name: string; value?: string }[] })[] };
  status?: {
    containerStatuses?: { name: string; state?: { waiting?: { reason?: string; message?: string } } }[];
  };
}
interface EndpointSlice extends KubeObject {
  endpoints?: { conditions?: { ready?: boolean }; targetRef?: { name?: string } }[];
  ports?: { port?: number }[];
}
interface Condition {
  type: string;
  status: string;
  message?: string;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls until the rollout is done, every new pod's agent is connected and, for `services`,
 * the EndpointSlices route to new pods only (kube-proxy follows them within its sync
 * period); fails early on a broken pod. `eachPoll` gets the injection's pods of every poll.
 */
export async function waitReady(
  api: KubeApi,
  injection: RolloutTarget,
  path: string,
  kind: string,
  request: InterceptRequest,
  services: string[] = [],
  eachPoll?: (pods: Pod[]) => Promise<void>,
) {
  const timeout = (request.timeoutSeconds ?? 120) * 1000;
  const deadline = Date.now() + timeout;
  while (Date.now() < deadline) {
    const object = await api.get<Workload>(path);
    const pods = await injectionPods(api, injection, object); // listed once per poll
    const failure = podFailure(pods) ?? replicaFailure(object);
    if (failure) throw new TelepodError(`${kind} ${request.workload} did not become ready: ${failure}`);
    await eachPoll?.(pods);
    const desired = object.spec.replicas ?? 1;
    if (
      rolledOut(object, kind, desired) &&
      injection.agents.size >= desired &&
      (await endpointsOnlyOurs(api, injection, pods, services))
    ) {
      return;
    }
    await sleep(300);
  }
  throw new TelepodError(`${kind} ${request.workload} did not become ready in ${timeout / 1000} s`);
}

/**
 * Polls until every EndpointSlice of each Service that has ready endpoints (bridges aside)
 * carries the Service's new target ports: a moved targetPort is in effect (kube-proxy follows
 * the slices). Until the deadline (epoch ms), then fails.
 */
export async function waitEndpointPorts(
  api: KubeApi,
  namespace: string,
  services: { name: string; ports: number[] }[],
  deadline: number,
): Promise<void> {
  const pointed = async (service: { name: string; ports: number[] }) => {
    const selector = encodeURIComponent(`kubernetes.io/service-name=${service.name}`);
    const slices = await api.list<EndpointSlice>(
      `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices?labelSelector=${selector}`,
    );
    // No serving endpoint (scaled to 0, none ready, the Service gone): nothing is sent anywhere,
    // and slices made later follow the Service as it is now.
    // Bridges (bridge-slices.ts) carry the old targets by design: only the Service's own count.
    const serving = slices.filter(
      (s) =>
        s.metadata?.labels?.[SLICE_MANAGER_LABEL] !== BRIDGE_MANAGER &&
        (s.endpoints ?? []).some((e) => e.conditions?.ready !== false),
    );
    return serving.every((s) => service.ports.every((port) => (s.ports ?? []).some((p) => p.port === port)));
  };
  while (!(await Promise.all(services.map(pointed))).every(Boolean)) {
    if (Date.now() > deadline) {
      throw new TelepodError(
        `the Services ${services.map((s) => s.name).join(', ')} did not take the agent's ports`,
      );
    }
    await sleep(200);
  }
}

/** True when every ready endpoint of `services` is a pod of this injection. */
async function endpointsOnlyOurs(
  api: KubeApi,
  injection: RolloutTarget,
  pods: Pod[],
  services: string[],
): Promise<boolean> {
  if (!services.length) return true;
  const ours = new Set(pods.map((p) => p.metadata?.name));
  for (const service of services) {
    const selector = encodeURIComponent(`kubernetes.io/service-name=${service}`);
    const slices = await api.list<EndpointSlice>(
      `/apis/discovery.k8s.io/v1/namespaces/${injection.namespace}/endpointslices?labelSelector=${selector}`,
    );
    const ready = slices
      .filter((s) => s.metadata?.labels?.[SLICE_MANAGER_LABEL] !== BRIDGE_MANAGER)
      .flatMap((s) => s.endpoints ?? [])
      .filter((e) => e.conditions?.ready !== false);
    if (!ready.length || ready.some((e) => !ours.has(e.targetRef?.name))) return false;
  }
  return true;
}

/** The workload's pods that carry this injection's agent (not terminating). */
async function injectionPods(api: KubeApi, injection: RolloutTarget, workload: Workload): Promise<Pod[]> {
  const selector = encodeURIComponent(podSelector(workload));
  const pods = await api.list<Pod>(
    `/api/v1/namespaces/${injection.namespace}/pods?labelSelector=${selector}`,
  );
  return pods.filter(
    (pod) =>
      !(pod.metadata as { deletionTimestamp?: string } | undefined)?.deletionTimestamp &&
      agentContainerOf(pod, injection.id) !== undefined,
  );
}

/** The pod's agent container if it is configured for injection `id`, else undefined. */
export function agentContainerOf(pod: Pod, id: string): Container | undefined {
  const agent = pod.spec.containers.find((c) => c.name === AGENT_CONTAINER);
  const config = agent?.env?.find((e) => e.name === AGENT_CONFIG_ENV)?.value;
  try {
    return config !== undefined && (JSON.parse(config) as AgentConfig).injection === id ? agent : undefined;
  } catch {
    return undefined;
  }
}

/** The first of these pods stuck in a waiting reason that will not resolve by itself. */
function podFailure(pods: Pod[]): string | undefined {
  for (const pod of pods) {
    for (const status of pod.status?.containerStatuses ?? []) {
      const waiting = status.state?.waiting;
      if (waiting?.reason && FAILING_WAIT_REASONS.has(waiting.reason)) {
        return `pod ${pod.metadata?.name} container ${status.name}: ${waiting.reason}: ${waiting.message ?? ''}`.trim();
      }
    }
  }
  return undefined;
}

function rolledOut(object: Workload, kind: string, desired: number): boolean {
  const status = (object.status ?? {}) as Record<string, number | string | undefined>;
  const observed = Number(status.observedGeneration ?? 0) >= (object.metadata?.generation ?? 0);
  if (kind === 'Deployment') {
    return (
      observed && Number(status.updatedReplicas ?? 0) >= desired && status.replicas === status.updatedReplicas
    );
  }
  if (kind === 'StatefulSet') {
    return (
      observed &&
      status.updateRevision === status.currentRevision &&
      Number(status.readyReplicas ?? 0) >= desired
    );
  }
  return observed;
}

function replicaFailure(object: Workload): string | undefined {
  const conditions = (object.status?.conditions ?? []) as Condition[];
  const failed = conditions.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
  return failed?.message;
}
