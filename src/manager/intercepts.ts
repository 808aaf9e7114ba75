// The manager's intercepts: the cluster changes behind them (agent injection, port moves,
// proxies), who may share a workload, and dormant agents. Requests for one workload run one at
// a time; the last intercept of a workload to end restores it. A request is checked and ports
// shared by port-sharing.ts's rules; what is held is recorded in InjectionRegistry
// (injection-registry.ts), a relayed rollout's intercepts in rolling-intercepts.ts; what an
// earlier manager left is taken back by leftovers.ts.
import { randomUUID } from 'node:crypto';
import { TelepodError, usageError } from '../protocol/errors.ts';
import type { InterceptInfo, InterceptedPort } from '../protocol/intercept.ts';
import type { InterceptRequest, LeaveAnswer } from '../protocol/requests.ts';
import { DORMANT_AGENT_MINUTES } from '../protocol/intercept.ts';
import { replacementTemplate, sidecarPlan } from './injection.ts';
import { AgentPods, type AgentOf } from './agent-pods.ts';
import { requireClaims, sweepClaimObjects } from './claims.ts';
import { publishState } from './injection-state.ts';
import { takeBackLeftovers } from './leftovers.ts';
import {
  checkedRequest,
  claimPort,
  ConflictError,
  describePort,
  isRouted,
  notHttpReason,
} from './port-sharing.ts';
import type { Signer } from './signer.ts';
import type { SessionRecord } from './sessions.ts';
import type { KubeApi } from './kube-api.ts';
import { Injector } from './injector.ts';
import { relayPlan, type RelayHandler, type RelaySettings } from './relay.ts';
import { KeyedQueue } from './keyed-queue.ts';
import { RollingIntercepts } from './rolling-intercepts.ts';
import { InjectionRegistry, type Injection } from './injection-registry.ts';
import { asBefore, serviceBefore, UndoBook } from './undo.ts';
import {
  findContainer,
  findWorkload,
  resolveServicePorts,
  onlyService,
  selectingServices,
  type FoundWorkload,
  type Service,
  type Workload,
} from './workloads.ts';

/** The session a request comes from. */
export type Requester = Pick<SessionRecord, 'id' | 'holder' | 'token'>;

export interface InterceptsOptions {
  api: KubeApi;
  agentBundle: string;
  /** How agents reach the manager, host:port. */
  managerAddress: string;
  /** The installer's image for agents (a session cannot choose it). */
  agentImage: string;
  /** Signs the undo records and injection states this manager writes, and checks the ones it finds. */
  signer: Signer;
  log: (message: string) => void;
  /** The namespaces this install may act in (`install --namespaces`); undefined: all of them. */
  namespaces?: string[] | undefined;
  /**
   * How long an agent stays dormant after the last intercept left (default DORMANT_AGENT_MINUTES;
   * the install's `--agent-idle`); 0: the workload is restored when its last intercept ends.
   */
  dormantIdleMs?: number | undefined;
  /** Whether the API server takes a `preStop` `sleep` action (Kubernetes ≥ 1.30). */
  preStopSleep?: boolean;
  /** The manager pod's IP, where relays listen during cold intercepts (relay.ts); none without it. */
  relayAddress?: string | undefined;
}

export class Intercepts extends InjectionRegistry {
  private readonly agentPods: AgentPods;
  /** Requests for one workload run one at a time. */
  private readonly queue = new KeyedQueue();

  private readonly undo: UndoBook;
  private readonly injector: Injector;
  private readonly rolling = new RollingIntercepts();
  /** Takes the connections relays accept (set by the server's Inbound). */
  private relaySettings?: RelaySettings;

  constructor(private readonly options: InterceptsOptions) {
    super();
    this.undo = new UndoBook(options.api, options.signer, options.log);
    this.injector = new Injector(options.api, this.undo, options, {
      track: (spec) => this.track(spec),
      release: (injection) => this.release(injection),
    });
    this.agentPods = new AgentPods(options.api);
  }

  private get api(): KubeApi {
    return this.options.api;
  }

  /** Where relayed connections go (Inbound.relayConnect); until this is set, nothing is relayed. */
  relayTo(handler: RelayHandler): void {
    this.relaySettings = { address: this.options.relayAddress, handler, log: this.options.log };
  }

  /**
   * The injection whose agent sent a stream, and its agent container's mounts: its token must be
   * valid and bound to a live pod of that injection (same namespace, the injection's agent
   * container). Throws Unauthenticated.
   */
  agentFor(injectionId: string | undefined, authorization: string | undefined): Promise<AgentOf<Injection>> {
    return this.agentPods.agentOf(injectionId ? this.byId.get(injectionId) : undefined, authorization);
  }

  async create(request: InterceptRequest, session: Requester): Promise<InterceptInfo> {
    request = checkedRequest(request, this.options.namespaces);
    if (request.mode === 'expose') {
      await requireClaims(this.api, session, request);
      const name = `telepod-expose-${session.id.slice(0, 8)}`;
      const key = `${request.namespace}/expose/${name}`;
      return this.queue.run(key, async () => {
        const started = Date.now();
        if (this.injections.has(key))
          throw new ConflictError(`this session already exposes ports as ${name}`);
        const { injection, ports } = await this.injector.expose(request, session, name, key);
        return this.register(injection, { ...request, workload: name }, session, ports, started);
      });
    }
    const found = await findWorkload(this.api, request.namespace, request.workload);
    await requireClaims(this.api, session, request, found);
    const key = `${request.namespace}/${found.resource}/${request.workload}`;
    return this.queue.run(key, () => this.createFor(found, key, request, session));
  }

  private async createFor(
    found: FoundWorkload,
    key: string,
    request: InterceptRequest,
    session: Requester,
  ): Promise<InterceptInfo> {
    const started = Date.now();
    let existing = this.injections.get(key);
    if (existing?.dormant && request.mode !== 'intercept') {
      // A replace or swap needs the workload as it was: the dormant agent goes first.
      await this.release(existing);
      existing = undefined;
      found = await findWorkload(this.api, request.namespace, request.workload);
    }
    if (existing && (existing.mode !== 'intercept' || request.mode !== 'intercept')) {
      const holder = [...existing.intercepts.values()][0]?.info.holder ?? 'another session';
      const state = { intercept: 'intercepted', replace: 'replaced', swap: 'swapped', expose: 'exposed' };
      throw new ConflictError(
        `${found.object.kind} ${request.workload} is already ${state[existing.mode]} by ${holder}`,
      );
    }
    if (request.mode === 'swap') {
      const { injection, ports } = await this.injector.swap(found, key, request, session);
      return this.register(injection, request, session, ports, started);
    }
    // With an agent in place, ports resolve against what the workload and Services were before.
    const workload = existing ? asBefore(found.object, existing.undo) : found.object;
    if (request.container) findContainer(workload, request.container);
    const before = (list: Service[]) => (existing ? list.map((s) => serviceBefore(s, existing.undo)) : list);
    // With an agent in place (its ports resolved when it was injected), from the API server's cache.
    const all = before(
      await selectingServices(this.api, request.namespace, workload, { cached: !!existing }),
    );
    const services = request.service ? onlyService(all, workload, request.service) : all;
    const resolved = resolveServicePorts(workload, services, request.ports);
    if (request.mode === 'replace') {
      const container = request.container ?? this.containerServing(found.object, resolved[0]!.containerPort);
      const injection = await this.injector.inject(found, key, request, session, all, (agent) => {
        const plan = replacementTemplate(found.object.spec.template, container, [], agent);
        return { template: plan.template, services: [], agentPorts: plan.agentPorts };
      });
      const ports = resolved.map((r) => ({
        local: r.local,
        remote: describePort(r),
        agentPort: r.containerPort,
      }));
      return this.register(injection, request, session, ports, started);
    }
    // The sidecar takes every port of every selecting Service, so that intercepting another
    // port later needs no second rollout.
    const app = request.container ?? this.containerServing(found.object, resolved[0]!.containerPort);
    if (isRouted(request)) {
      for (const r of resolved) {
        const reason = notHttpReason(r.servicePort);
        if (reason) throw usageError(`port ${describePort(r)} cannot be intercepted per request: ${reason}`);
      }
    }
    // Checked before an injection, and again against it (another request may have come first).
    if (existing) resolved.forEach((r) => claimPort(existing, found.object, r, request, session.id));
    const id = randomUUID();
    const relay = existing
      ? undefined
      : this.relaySettings && relayPlan(this.relaySettings, request, session.id, id, resolved);
    // A relayed intercept holds its ports from the rollout's start: the new pods' agents take
    // its connections as soon as they are ready, while the relays still take some.
    let early: InterceptedPort[] | undefined;
    if (relay) {
      this.rolling.start(id, session.id);
      relay.start = (injection) => {
        early = resolved.map((r) => claimPort(injection, found.object, r, request, session.id));
        this.hold(injection, request, session, early, started, id);
      };
    }
    const injection =
      existing ??
      (await this.injector
        .inject(
          found,
          key,
          request,
          session,
          all,
          (a) => sidecarPlan(found.object, all, a, app, this.options.preStopSleep === true),
          relay,
        )
        .catch((err: unknown) => {
          this.rolling.finish(id);
          throw err;
        }));
    if (this.rolling.finish(id)) {
      await this.release(injection);
      throw new TelepodError(`the session ended while ${request.workload} rolled out; it is restored`);
    }
    try {
      const ports = early ?? resolved.map((r) => claimPort(injection, found.object, r, request, session.id));
      return this.register(injection, request, session, ports, started, id);
    } catch (err) {
      if (!injection.intercepts.size && !injection.dormant) await this.release(injection);
      throw err;
    }
  }

  private containerServing(workload: Workload, port: number): string {
    const containers = workload.spec.template.spec.containers;
    return (containers.find((c) => c.ports?.some((p) => p.containerPort === port)) ?? containers[0]!).name;
  }

  /** Holds the intercept, recorded on the workload: the answer to its request. */
  private async register(
    injection: Injection,
    request: InterceptRequest,
    session: Requester,
    ports: InterceptedPort[],
    started: number,
    id: string = randomUUID(),
  ): Promise<InterceptInfo> {
    const info = this.hold(injection, request, session, ports, started, id);
    await this.publish(injection);
    return info;
  }

  /** Puts the intercept among the injection's: its agents route its ports to it from now on. */
  private hold(
    injection: Injection,
    request: InterceptRequest,
    session: Requester,
    ports: InterceptedPort[],
    started: number,
    id: string,
  ): InterceptInfo {
    const info: InterceptInfo = {
      id,
      mode: request.mode,
      namespace: request.namespace,
      workload: request.workload,
      kind: injection.kind,
      ports,
      holder: session.holder,
      ...(request.filter ? { filter: request.filter } : {}),
      ...(request.mirror ? { mirror: true } : {}),
      readySeconds: (Date.now() - started) / 1000,
    };
    injection.intercepts.set(info.id, { info, sessionId: session.id });
    this.wake(injection);
    this.notifyAgents(injection);
    return info;
  }

  /** Records who intercepts the workload, and its state, on the workload (publishedState). */
  private publish(injection: Injection): Promise<void> {
    return publishState(this.api, this.options.signer, injection, this.options.log);
  }

  /**
   * Ends one intercept of a session. The last one of a workload restores it when `restore` is
   * asked or the workload was replaced, swapped or exposed; an intercepted workload keeps its
   * agent, dormant, for the next intercept (see DORMANT_AGENT_MINUTES).
   */
  async leave(id: string, sessionId: string, restore: boolean): Promise<LeaveAnswer> {
    const injection = this.holding(id, sessionId);
    if (!injection) return { left: false };
    const idleMs = this.options.dormantIdleMs ?? DORMANT_AGENT_MINUTES * 60_000;
    return this.queue.run(injection.key, async () => {
      // Released meanwhile (a rollout that failed, another leave): nothing is left to do.
      if (this.injections.get(injection.key) !== injection || !injection.intercepts.delete(id)) {
        return { left: true, agent: 'restored' };
      }
      this.notifyAgents(injection);
      const last = injection.intercepts.size === 0;
      const restoring = last && (restore || injection.mode !== 'intercept' || idleMs === 0);
      if (last && !restoring) this.sleep(injection, sessionId, idleMs);
      // Recorded before a restore: a manager restarting halfway through it finishes it.
      await this.publish(injection);
      if (restoring) await this.release(injection);
      if (injection.dormant) return { left: true, agent: 'dormant', dormantSeconds: idleMs / 1000 };
      return { left: true, agent: restoring ? 'restored' : 'shared' };
    });
  }

  /** Ends a session's intercepts, deletes its leftover claim objects (not awaited), restores its dormant agents. */
  async endSession(sessionId: string): Promise<void> {
    // An intercept held while its rollout runs is not waited for: its request restores the
    // workload once the rollout is over (see createFor).
    this.rolling.endSession(sessionId);
    const ids = [...this.injections.values()].flatMap((i) =>
      [...i.intercepts]
        .filter(([id, a]) => a.sessionId === sessionId && !this.rolling.has(id))
        .map(([id]) => id),
    );
    for (const id of ids) await this.leave(id, sessionId, true);
    void sweepClaimObjects(this.api, this.options.namespaces, sessionId).catch((err: Error) =>
      this.options.log(`cannot sweep the claim objects of session ${sessionId}: ${err.message}`),
    );
    for (const injection of [...this.injections.values()]) {
      if (injection.dormant?.sessionId !== sessionId) continue;
      await this.queue.run(injection.key, async () => {
        if (injection.dormant?.sessionId === sessionId) await this.release(injection);
      });
    }
  }

  /**
   * Restores now a workload whose agent this session left dormant (`leave --restore` after a
   * plain leave); false when it is not dormant for this session (intercepted again, restored).
   */
  async restoreDormant(namespace: string, workload: string, sessionId: string): Promise<boolean> {
    const injection = [...this.injections.values()].find(
      (i) => i.namespace === namespace && i.name === workload && i.dormant?.sessionId === sessionId,
    );
    if (!injection) return false;
    return this.queue.run(injection.key, async () => {
      if (injection.dormant?.sessionId !== sessionId) return false;
      await this.release(injection);
      return true;
    });
  }

  /** Keeps the agent of a workload no intercept holds, until `idleMs` pass. */
  private sleep(injection: Injection, sessionId: string, idleMs: number): void {
    clearTimeout(injection.dormant?.timer);
    const restoreIfStillDormant = () =>
      this.queue
        .run(injection.key, async () => {
          if (injection.dormant?.timer === timer) await this.release(injection);
        })
        .catch((err: Error) => this.options.log(`cannot restore ${injection.key}: ${err.message}`));
    const timer = setTimeout(() => void restoreIfStillDormant(), idleMs).unref();
    injection.dormant = { sessionId, timer };
  }

  /** A dormant workload is intercepted again: its agent serves, and no timer restores it. */
  private wake(injection: Injection): void {
    clearTimeout(injection.dormant?.timer);
    delete injection.dormant;
  }

  private async release(injection: Injection): Promise<void> {
    this.wake(injection);
    this.forget(injection);
    await this.undo.restore(injection.undo);
  }

  /** Takes back what earlier managers left (leftovers.ts): live sessions' intercepts, the rest restored. */
  takeBack(live: Set<string>): Promise<string[]> {
    return takeBackLeftovers(
      {
        api: this.api,
        undoBook: this.undo,
        signer: this.options.signer,
        namespaces: this.options.namespaces,
        holds: (key, id) => this.injections.has(key) || this.byId.has(id),
        adopt: async ({ state, namespace, undo }, kept, complete) => {
          const injection = this.track({ ...state, namespace, undo });
          for (const active of kept) injection.intercepts.set(active.info.id, active);
          if (!complete) await this.publish(injection);
        },
      },
      live,
    );
  }
}
