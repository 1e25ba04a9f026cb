// Recent writes by request ID, with what they answered: a client that retries
// a create (its deadline passed, its connection dropped) with the same ID gets
// the first answer back instead of a second object or ALREADY_EXISTS.

/**
 * 10 minutes is far past any client's deadline and retries (the CLI's default
 * is 30 s); 10,000 entries of one object each stay in the low megabytes
 * however fast requests come. Past either bound a repeat runs again: names are
 * unique, so it then fails ALREADY_EXISTS rather than creating twice.
 */
export const REQUEST_LOG_LIMITS = { count: 10_000, ageMs: 10 * 60_000 };

export class RequestLog {
  // insertion order is age order: the oldest entry is always first
  private readonly entries = new Map<string, { at: number; result: object }>();
  /** Writes still being committed: a repeat meanwhile waits for the same answer. */
  private readonly pending = new Map<string, Promise<object>>();

  constructor(
    private readonly limits = REQUEST_LOG_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * `run`'s answer, or the one it gave before under `key`. Only successes are
   * kept: a refused write changed nothing, so a repeat may as well try again.
   */
  async answer<T extends object>(key: string, run: () => Promise<T>): Promise<T> {
    this.expire();
    const seen = this.entries.get(key)?.result ?? this.pending.get(key);
    if (seen) return seen as Promise<T> | T;
    const running = run();
    this.pending.set(key, running);
    try {
      const result = await running;
      this.entries.set(key, { at: this.now(), result });
      if (this.entries.size > this.limits.count) this.entries.delete(this.entries.keys().next().value!);
      return result;
    } finally {
      this.pending.delete(key);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  private expire(): void {
    const oldest = this.now() - this.limits.ageMs;
    for (const [key, e] of this.entries) {
      if (e.at > oldest) break;
      this.entries.delete(key);
    }
  }
}
