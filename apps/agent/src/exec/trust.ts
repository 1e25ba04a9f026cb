// "Trust what was made for a while": a driver that made something skips making
// the same thing again until its time is up, then makes it anew, which repairs
// drift (a table flushed or an SA deleted from outside). One slot per thing made.

export class TrustCache {
  private readonly made = new Map<string, { key: string; at: number }>();

  /** `ttlMs` 0: never trusted (made every time). */
  constructor(private readonly ttlMs: number) {}

  /** Runs `make` unless `slot` was made as `key` less than ttlMs ago; until `make` succeeds, the slot is not trusted. */
  async ensure(slot: string, key: string, make: () => Promise<void>): Promise<void> {
    const last = this.made.get(slot);
    if (last?.key === key && Date.now() - last.at < this.ttlMs) return;
    this.made.delete(slot);
    await make();
    this.made.set(slot, { key, at: Date.now() });
  }

  forget(slot: string): void {
    this.made.delete(slot);
  }
}
