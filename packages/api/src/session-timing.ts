// The timing agents and the manager agree on, so that a manager restart moves
// no task: every agent is back within the manager's restart grace (node-health.ts).

/** An agent's reconnect backoff starts here and doubles per failure… */
export const RECONNECT_MIN_BACKOFF_MS = 100;
/** …up to this: after any outage, an agent tries again within this long of the manager's return. */
export const RECONNECT_MAX_BACKOFF_MS = 2000;
/** How long an agent's Register may take before it tries again. */
export const REGISTER_DEADLINE_MS = 5000;

/**
 * The wait before reconnect attempt `failures` (0 for the first): doubling from
 * the minimum, capped, with full jitter over its upper half, so that a
 * thousand agents that lost their manager at once do not come back in step.
 */
export function reconnectDelayMs(failures: number, random: () => number = Math.random): number {
  const ceiling = Math.min(RECONNECT_MAX_BACKOFF_MS, RECONNECT_MIN_BACKOFF_MS * 2 ** Math.min(failures, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
