// Node health: a node whose agent misses MISSED_HEARTBEATS_FOR_DOWN heartbeats is
// marked down and its session ended, so that its tasks move elsewhere and its endpoints leave every view.
// After the manager starts, no node is judged before every agent had time to come back (restartGraceMs).

import { RECONNECT_MAX_BACKOFF_MS, REGISTER_DEADLINE_MS } from "@vipmesh/api";
import { inBackground } from "./background.ts";
import type { Cluster } from "./cluster.ts";
import type { ClusterStore } from "./store/cluster-store.ts";

export const DEFAULT_HEARTBEAT_PERIOD_MS = 5000;
export const MISSED_HEARTBEATS_FOR_DOWN = 3;

/**
 * How long after the manager starts node-down timers begin, as swarmkit's
 * dispatcher does: the heartbeats a node may miss anyway, plus the longest an
 * agent waits between reconnect attempts and the time its Register may take.
 * 10 s at a 1 s heartbeat, 22 s at the default 5 s.
 */
export const restartGraceMs = (heartbeatPeriodMs: number): number =>
  MISSED_HEARTBEATS_FOR_DOWN * heartbeatPeriodMs + RECONNECT_MAX_BACKOFF_MS + REGISTER_DEADLINE_MS;

export class NodeHealth {
  private readonly lastSeen = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: ClusterStore,
    private readonly cluster: Cluster,
    private readonly heartbeatPeriodMs: number,
    /** Closes a node's session from the manager's side, saying why. */
    private readonly endSession: (nodeId: string, why: string) => void,
  ) {}

  start(): void {
    // nodes known before a restart count as seen at the end of the grace, less the heartbeats they may miss
    const seen = Date.now() + restartGraceMs(this.heartbeatPeriodMs) - MISSED_HEARTBEATS_FOR_DOWN * this.heartbeatPeriodMs;
    for (const n of this.store.list("node")) this.lastSeen.set(n.id, seen);
    this.timer = setInterval(() => this.check(), Math.max(50, this.heartbeatPeriodMs / 2)).unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The node's agent was heard from (it opened a session). */
  seen(nodeId: string): void {
    this.lastSeen.set(nodeId, Date.now());
  }

  /** A heartbeat: the node is alive, and ready again if it was not. */
  heartbeat(nodeId: string): void {
    this.seen(nodeId);
    if (this.store.node(nodeId)?.status.state !== "ready") inBackground(`marking node ${nodeId} ready`, this.cluster.setNodeState(nodeId, "ready", ""));
  }

  private check(): void {
    const deadline = Date.now() - this.heartbeatPeriodMs * MISSED_HEARTBEATS_FOR_DOWN;
    for (const n of this.store.list("node")) {
      if (n.status.state === "down") continue;
      const seen = this.lastSeen.get(n.id) ?? 0;
      if (seen < deadline) {
        inBackground(`marking node ${n.id} down`, this.cluster.setNodeState(n.id, "down", `no heartbeat for ${MISSED_HEARTBEATS_FOR_DOWN} periods`));
        this.endSession(n.id, "heartbeats missed: node marked down");
      }
    }
  }
}
