// When the next fan-out may go. A change that finds the sessions idle goes at
// once: a lone call waits for nothing. Changes that come while sessions are
// still applying the last fan-out gather into the next one, so a burst of
// calls costs the manager and every agent a few fan-outs, not one per call,
// and agents are never sent faster than they apply. A few slow sessions hold
// the next one back only briefly, stuck ones at most MAX_HOLD_MS.

/** Sessions that may still lag when the wait is short: this share of those sent to, at least one. */
export const STRAGGLER_SHARE = 0.05;
export const STRAGGLER_WAIT_MS = 20;
export const MAX_HOLD_MS = 500;

export class FanoutPace {
  private waiting = new Set<string>();
  private stragglers = 0;
  private sentAt = 0;

  constructor(private readonly clock: () => number = () => performance.now()) {}

  /** A fan-out went to these sessions. */
  sent(nodeIds: Iterable<string>): void {
    this.waiting = new Set(nodeIds);
    this.stragglers = Math.max(1, Math.floor(this.waiting.size * STRAGGLER_SHARE));
    this.sentAt = this.clock();
  }

  /** A session applied the last fan-out, or went away; true if the pace was waiting for it. */
  done(nodeId: string): boolean {
    return this.waiting.delete(nodeId);
  }

  /** How long the next fan-out should wait from now: 0 for at once. */
  wait(): number {
    if (this.waiting.size === 0) return 0;
    const elapsed = this.clock() - this.sentAt;
    const until = this.waiting.size <= this.stragglers ? STRAGGLER_WAIT_MS : MAX_HOLD_MS;
    return Math.max(0, until - elapsed);
  }
}
