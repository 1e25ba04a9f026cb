// When a slot whose task ended gets a new one: Docker's restart policy, as
// swarmkit's restart supervisor applies it (manager/orchestrator/restart).
// Only a task that ended by itself (complete, failed, rejected) is restarted
// by its policy; a task shut down by an update, a scale-down or a drain, or
// orphaned by its node, is replaced at once and is no restart.

import type { RestartPolicy, Service, Task, TaskState } from "@vipmesh/core";

/** What the orchestrator does with a wanted slot that holds no live task. */
export type SlotDecision =
  /** restart: the policy's maxAttempts, when the new task is a restart (for RestartHistory.record). */
  | { action: "create"; restart?: { maxAttempts: number } }
  | { action: "wait"; ms: number }
  /** The policy says no more: the slot stays empty, its last task shows why. */
  | { action: "stay" };

const ENDED_BY_ITSELF: ReadonlySet<TaskState> = new Set(["complete", "failed", "rejected"]);
const failed = (state: TaskState) => state === "failed" || state === "rejected";

/**
 * Restarts made, per service and slot, of the slot's current spec: when each
 * replacement began (ms). In memory, as swarmkit's: a manager restart forgets it.
 */
export class RestartHistory {
  private readonly byService = new Map<string, Map<string, { specVersion: number; at: number[] }>>();

  /** A restart at `at`; only the last `keep` are kept (all a policy of `keep` attempts asks about). */
  record(serviceId: string, slot: string, specVersion: number, at: number, keep: number): void {
    if (keep <= 0) return;
    const slots = this.byService.get(serviceId) ?? new Map<string, { specVersion: number; at: number[] }>();
    this.byService.set(serviceId, slots);
    const prior = slots.get(slot);
    const list = prior?.specVersion === specVersion ? prior.at : [];
    slots.set(slot, { specVersion, at: [...list, at].slice(-keep) });
  }

  /** Restarts of the slot on `specVersion` that began at `since` or later. */
  count(serviceId: string, slot: string, specVersion: number, since: number): number {
    const h = this.byService.get(serviceId)?.get(slot);
    return h?.specVersion === specVersion ? h.at.filter((at) => at >= since).length : 0;
  }

  forget(serviceId: string): void {
    this.byService.delete(serviceId);
  }
}

/**
 * The slot's next step, from its last task (the newest made in it): none, or
 * one of an older spec (an update brings the slot back), or one that did not
 * end by itself → a new task now. Else the task's own policy decides
 * (absent: any condition, `defaultDelayMs` after a failure — a task that
 * completed is replaced at once, as before policies existed).
 */
export function decideSlot(
  s: Service,
  slot: string,
  slotTasks: Task[],
  history: RestartHistory,
  defaultDelayMs: number,
  now: number,
): SlotDecision {
  const last = slotTasks.reduce<Task | undefined>((a, b) => (!a || b.createdAt > a.createdAt ? b : a), undefined);
  if (!last || last.specVersion !== s.specVersion || !ENDED_BY_ITSELF.has(last.status.state)) return { action: "create" };
  const policy: RestartPolicy = last.spec.restartPolicy ?? {
    condition: "any",
    delayMs: failed(last.status.state) ? defaultDelayMs : 0,
    maxAttempts: 0,
    windowMs: 0,
  };
  if (policy.condition === "none" || (policy.condition === "on-failure" && !failed(last.status.state))) return { action: "stay" };
  const endedAt = Date.parse(last.status.timestamp);
  if (policy.maxAttempts > 0) {
    // judged as of when the task ended, so the answer does not change while the slot waits
    const since = policy.windowMs > 0 ? endedAt - policy.windowMs : Number.NEGATIVE_INFINITY;
    if (history.count(s.id, slot, s.specVersion, since) >= policy.maxAttempts) return { action: "stay" };
  }
  const wait = endedAt + policy.delayMs - now;
  return wait > 0 ? { action: "wait", ms: wait } : { action: "create", restart: { maxAttempts: policy.maxAttempts } };
}
