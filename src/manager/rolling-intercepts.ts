// Intercepts held from their rollout's start (a relayed cold intercept, relay.ts): the request
// is still waiting for the rollout, so a session that ends meanwhile does not leave them; it
// marks them, and the request restores the workload once the rollout is over.

/** The intercepts whose rollout runs, by id, and whether their session ended meanwhile. */
export class RollingIntercepts {
  private readonly rolling = new Map<string, { sessionId: string; ended: boolean }>();

  /** Intercept `id` of `sessionId` is held while its rollout runs. */
  start(id: string, sessionId: string): void {
    this.rolling.set(id, { sessionId, ended: false });
  }

  /** The rollout of `id` is over (or failed): whether its session ended meanwhile. */
  finish(id: string): boolean {
    const ended = this.rolling.get(id)?.ended ?? false;
    this.rolling.delete(id);
    return ended;
  }

  /** Whether `id`'s rollout still runs (its request, not the session's end, takes it back). */
  has(id: string): boolean {
    return this.rolling.has(id);
  }

  /** The session ended: each of its rolling intercepts is restored once its rollout is over. */
  endSession(sessionId: string): void {
    for (const rolling of this.rolling.values()) if (rolling.sessionId === sessionId) rolling.ended = true;
  }
}
