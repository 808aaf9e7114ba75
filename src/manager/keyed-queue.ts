// Runs work one at a time per key (a workload): each piece starts after every earlier piece for
// the same key has finished, whether it succeeded or failed.

/** Work queued per key; the map holds only keys with work in flight. */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `work` after every earlier piece of work for `key` has finished; answers its result. */
  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const next = (this.tails.get(key) ?? Promise.resolve()).then(work, work);
    const settled = next.catch(() => undefined);
    this.tails.set(key, settled);
    // The last piece of a key removes it.
    void settled.then(() => {
      if (this.tails.get(key) === settled) this.tails.delete(key);
    });
    return next;
  }
}
