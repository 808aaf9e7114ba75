// Which injection an agent's stream comes from: the pod's projected token must be valid
// (agent-auth.ts) and name a live pod of the injection's namespace that carries the injection's
// agent container; the mounts of that container (what its SFTP serves) come with the answer.
// What a read of the pod showed is remembered for a minute (a pod's containers cannot change; a
// failed read is not remembered), and callers that ask while its read is in flight wait for that
// read: a burst of intercepted connections from a new agent (200 at once in the chaos run) made
// one GET of the pod each, and with it a TLS connection each to the API server that the manager
// then kept (README, Performance).
import { AgentAuthenticator, type TokenPod, Unauthenticated } from './agent-auth.ts';
import { volumeMountPaths } from './injection.ts';
import type { KubeApi } from './kube-api.ts';
import { agentContainerOf, type Pod } from './rollout.ts';

/** What is checked of an injection. */
interface Checked {
  id: string;
  namespace: string;
}

/** A stream's injection, and the volume mount paths of its pod's agent container. */
export interface AgentOf<T> {
  injection: T;
  mounts: string[];
}

/** What a read of a pod showed: the agent container's mounts, or undefined for no agent of the injection. */
type Showed = string[] | undefined;

const notAnAgent = (pod: TokenPod) =>
  new Unauthenticated(`pod ${pod.namespace}/${pod.name} is not an agent of a current intercept`);

/** How long what a read of a pod showed is believed without asking again. */
const BELIEVED_MS = 60_000;
/**
 * Pods remembered at most, and the memory their mount paths may take; past either, the entries
 * remembered longest are forgotten first (docs/security.md).
 */
const REMEMBERED_MAX = 10_000;
const REMEMBERED_BYTES_MAX = 4 << 20;
/**
 * A pod whose agent container's mount paths take more than this is not believed an agent: a pod
 * spec may list any number of mounts, and anyone who may create pods in an intercepted namespace
 * can make one that passes the other checks (docs/security.md).
 */
const MOUNTS_BYTES_MAX = 64 << 10;

/** About what a remembered entry takes in memory with no mount paths. */
const NOTHING_BYTES = 64;
/** About what mount paths take in memory (two bytes a character, and each string's own). */
const sizeOf = (mounts: string[]) =>
  mounts.reduce((bytes, path) => bytes + 2 * path.length + 32, NOTHING_BYTES);

/** Checks agents' streams against their pods; one per manager. */
export class AgentPods {
  private readonly auth: AgentAuthenticator;
  /**
   * `podUid/injectionId` → what a read of the pod showed, believed until `until`, and what it
   * takes (`bytes`); in the order remembered, the oldest first.
   */
  private readonly checked = new Map<string, { showed: Showed; until: number; bytes: number }>();
  /** `podUid/injectionId` → the read of that pod in flight. */
  private readonly checking = new Map<string, Promise<Showed>>();
  /** What the entries of `checked` take in all. */
  private rememberedBytes = 0;

  constructor(
    private readonly api: KubeApi,
    private readonly now: () => number = Date.now,
  ) {
    this.auth = new AgentAuthenticator(api, now);
  }

  /**
   * `injection`, with the mounts of the sender's agent container, when `authorization` proves
   * its sender is one of its agents; throws Unauthenticated otherwise, also when the pod cannot
   * be read now (the agent then serves the connection from the app, as for a port no longer
   * intercepted).
   */
  async agentOf<T extends Checked>(
    injection: T | undefined,
    authorization: string | undefined,
  ): Promise<AgentOf<T>> {
    const pod = await this.auth.verify(authorization);
    if (!injection || pod.namespace !== injection.namespace) throw notAnAgent(pod);
    const key = `${pod.uid}/${injection.id}`;
    const known = this.checked.get(key);
    const fresh = known && known.until > this.now() ? known : undefined;
    let mounts = fresh?.showed;
    if (!fresh) {
      let check = this.checking.get(key);
      if (!check) {
        check = this.read(pod, injection.id, key).finally(() => this.checking.delete(key));
        this.checking.set(key, check);
      }
      mounts = await check;
    }
    if (!mounts) throw notAnAgent(pod);
    return { injection, mounts };
  }

  /**
   * The agent container's mounts if the live pod is the token's and carries the injection's
   * agent, else undefined; remembered once read.
   */
  private async read(pod: TokenPod, injectionId: string, key: string): Promise<Showed> {
    const object = await this.api
      .get<Pod>(`/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`)
      .catch((err: Error) => {
        throw new Unauthenticated(`pod ${pod.namespace}/${pod.name} cannot be checked now: ${err.message}`);
      });
    const agent = object.metadata?.uid === pod.uid ? agentContainerOf(object, injectionId) : undefined;
    const mounts = agent ? volumeMountPaths(agent) : undefined;
    const size = mounts ? sizeOf(mounts) : NOTHING_BYTES;
    const showed = size <= MOUNTS_BYTES_MAX ? mounts : undefined;
    this.remember(key, showed, showed ? size : NOTHING_BYTES);
    return showed;
  }

  /** Remembers what `key`'s read showed, forgetting the oldest entries while it would not fit. */
  private remember(key: string, showed: Showed, bytes: number): void {
    this.forget(key);
    for (const oldest of this.checked.keys()) {
      if (this.checked.size < REMEMBERED_MAX && this.rememberedBytes + bytes <= REMEMBERED_BYTES_MAX) break;
      this.forget(oldest);
    }
    this.checked.set(key, { showed, until: this.now() + BELIEVED_MS, bytes });
    this.rememberedBytes += bytes;
  }

  /** Forgets what `key`'s read showed, and the bytes it took. */
  private forget(key: string): void {
    const entry = this.checked.get(key);
    if (!entry) return;
    this.checked.delete(key);
    this.rememberedBytes -= entry.bytes;
  }
}
