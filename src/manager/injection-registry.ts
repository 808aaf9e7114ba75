// The manager's record of injections (workloads that carry an agent) and of the intercepts on
// each, with the lookups that streams and `status` need; it tells agents what they route. The
// changes behind them (inject, restore, take back) are made by Intercepts (intercepts.ts),
// which extends this registry.
import { usageError } from '../protocol/errors.ts';
import type {
  AgentMessage,
  AgentPort,
  InterceptHealth,
  InterceptInfo,
  PodContext,
} from '../protocol/intercept.ts';
import type { AgentHello } from '../protocol/requests.ts';
import type { TrackedInjection } from './injector.ts';
import { agentMessage, isRouted } from './port-sharing.ts';
import type { UndoRecord } from './undo.ts';

/** One intercept, and the session that holds it. */
export interface Active {
  info: InterceptInfo;
  sessionId: string;
}

/** A workload with telepod's agent in it, and the intercepts on it. */
export interface Injection {
  key: string;
  namespace: string;
  name: string;
  kind: string;
  mode: InterceptInfo['mode'];
  /** Named in the agents' configuration; their pods' tokens prove they are its agents. */
  id: string;
  agentPorts: AgentPort[];
  undo: UndoRecord;
  intercepts: Map<string, Active>;
  /** The app container's environment and mounts, as the first agent to register reported them. */
  context?: PodContext;
  /** One per connected agent (one per pod), in the order they registered. */
  agents: Set<AgentLink>;
  /**
   * Set while no intercept holds the workload but its agent stays, passing every request to the
   * app, so that the next intercept needs no rollout: which session left it last, and the timer
   * that restores the workload after the idle time.
   */
  dormant?: { sessionId: string; timer: NodeJS.Timeout };
}

/** A registered agent: lines sent here reach it on its watch stream. */
export interface AgentLink {
  send(message: AgentMessage): void;
}

/** The injections a manager holds, by workload key and by injection id. */
export class InjectionRegistry {
  protected readonly injections = new Map<string, Injection>();
  protected readonly byId = new Map<string, Injection>();

  /**
   * The intercept an agent's stream for `agentPort` is for: the one it names (a request the
   * agent routed), else the one that holds the port whole.
   */
  interceptOn(injection: Injection, agentPort: number, id?: string): Active | undefined {
    const onPort = (a: Active) => a.info.ports.some((p) => p.agentPort === agentPort);
    if (id !== undefined) {
      const named = injection.intercepts.get(id);
      return named && onPort(named) ? named : undefined;
    }
    return [...injection.intercepts.values()].find((a) => onPort(a) && !isRouted(a.info));
  }

  /** What the injection's agents are told: the ports intercepted whole, and each port's routes. */
  agentMessage(injection: Injection): AgentMessage {
    return agentMessage([...injection.intercepts.values()]);
  }

  /** Tells each of the injection's agents where its ports' connections go now. */
  protected notifyAgents(injection: Injection): void {
    const message = this.agentMessage(injection);
    for (const agent of injection.agents) agent.send(message);
  }

  /**
   * What the first registering agent's pod gives the workstation: the env it reported, and the
   * mounts of its agent container as the manager read them (`agentFor`).
   */
  learnContext(injection: Injection, env: AgentHello['env'], mounts: string[]): void {
    injection.context ??= { env, mounts };
  }

  /** Registers an injection before its rollout, so that its agents can authenticate meanwhile. */
  protected track(spec: TrackedInjection): Injection {
    const injection: Injection = { ...spec, intercepts: new Map(), agents: new Set() };
    const { key, id } = spec;
    this.injections.set(key, injection);
    this.byId.set(id, injection);
    return injection;
  }

  /** Drops an injection that is being restored. */
  protected forget(injection: Injection): void {
    if (this.injections.get(injection.key) === injection) this.injections.delete(injection.key);
    this.byId.delete(injection.id);
  }

  /** The injection that holds intercept `id` of the session, if any. */
  protected holding(id: string, sessionId: string): Injection | undefined {
    return [...this.injections.values()].find((i) => i.intercepts.get(id)?.sessionId === sessionId);
  }

  /** The injection behind one of the session's intercepts. */
  injectionOf(id: string, sessionId: string): Injection {
    const injection = this.holding(id, sessionId);
    if (!injection) throw usageError(`no intercept ${id} in this session`);
    return injection;
  }

  /** The environment and volume mounts behind one of the session's intercepts. */
  context(id: string, sessionId: string): PodContext {
    return this.injectionOf(id, sessionId).context ?? { env: {}, mounts: [] };
  }

  /**
   * How each intercept of a session is doing, as its daemon's `status` shows it: effective
   * while at least one agent of its workload is connected.
   */
  health(sessionId: string): InterceptHealth[] {
    return [...this.injections.values()].flatMap((injection) =>
      [...injection.intercepts]
        .filter(([, a]) => a.sessionId === sessionId)
        .map(([id]) =>
          injection.agents.size
            ? { id, agents: injection.agents.size }
            : {
                id,
                agents: 0,
                problem: `no agent of ${injection.kind} ${injection.name} is connected to the traffic manager (its pod is starting or restarting)`,
              },
        ),
    );
  }
}
