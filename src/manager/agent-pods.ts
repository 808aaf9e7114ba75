// Which injection an agent's stream comes from: the pod's projected token must be valid
// (agent-auth.ts) and name a live pod of the injection's namespace that carries the injection's
// agent container. A pod found to be one is remembered for a minute.
import { AgentAuthenticator, Unauthenticated } from './agent-auth.ts';
import type { KubeApi } from './kube-api.ts';
import { carriesAgent, type Pod } from './rollout.ts';

/** What is checked of an injection. */
interface Checked {
  id: string;
  namespace: string;
}

/** How long a pod checked to be an injection's agent is believed without asking again. */
const BELIEVED_MS = 60_000;

export class AgentPods {
  private readonly auth: AgentAuthenticator;
  /** `podUid/injectionId` → until when the pod was checked to be an agent of the injection. */
  private readonly checked = new Map<string, number>();

  constructor(private readonly api: KubeApi) {
    this.auth = new AgentAuthenticator(api);
  }

  /** `injection` when `authorization` proves its sender is one of its agents; throws Unauthenticated. */
  async injectionOf<T extends Checked>(
    injection: T | undefined,
    authorization: string | undefined,
  ): Promise<T> {
    const pod = await this.auth.verify(authorization);
    if (!injection || pod.namespace !== injection.namespace) {
      throw new Unauthenticated(`pod ${pod.namespace}/${pod.name} is not an agent of a current intercept`);
    }
    const key = `${pod.uid}/${injection.id}`;
    if ((this.checked.get(key) ?? 0) > Date.now()) return injection;
    const object = await this.api
      .get<Pod>(`/api/v1/namespaces/${pod.namespace}/pods/${pod.name}`)
      .catch(() => undefined);
    if (object?.metadata?.uid !== pod.uid || !carriesAgent(object, injection.id)) {
      throw new Unauthenticated(`pod ${pod.namespace}/${pod.name} is not an agent of a current intercept`);
    }
    if (this.checked.size > 10_000) this.checked.clear();
    this.checked.set(key, Date.now() + BELIEVED_MS);
    return injection;
  }
}
