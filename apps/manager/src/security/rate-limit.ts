// A sliding-window limit per key: at most `count` events in `windowMs`.
// Registration uses it per node, as swarm's dispatcher does (3 per 8 s): an
// agent stuck in a restart loop, or a stolen certificate, cannot flood the store.
// Joins use it per token and source address: a leaked token cannot mint nodes by the thousand.

export class RateLimiter {
  private readonly events = new Map<string, number[]>();

  constructor(
    readonly count: number,
    readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records an event for `key`; false (and nothing recorded) when the key is over its limit. */
  take(key: string): boolean {
    const t = this.now();
    const recent = this.recent(key, t);
    if (recent.length >= this.count) {
      this.events.set(key, recent);
      return false;
    }
    recent.push(t);
    this.events.set(key, recent);
    if (this.events.size > 10_000) this.prune(t);
    return true;
  }

  /** How long until `key` may take again: 0 when it may now. */
  retryInMs(key: string): number {
    const t = this.now();
    const recent = this.recent(key, t);
    return recent.length < this.count ? 0 : recent[recent.length - this.count]! + this.windowMs - t;
  }

  private recent(key: string, t: number): number[] {
    return (this.events.get(key) ?? []).filter((at) => at > t - this.windowMs);
  }

  private prune(t: number): void {
    for (const [k, v] of this.events) if (v.every((at) => at <= t - this.windowMs)) this.events.delete(k);
  }
}
