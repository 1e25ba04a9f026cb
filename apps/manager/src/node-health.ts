// Node health: a node whose agent misses MISSED_HEARTBEATS_FOR_DOWN heartbeats is
// marked down and its session ended, so that its tasks move elsewhere and its endpoints leave every view.
// After the manager starts, no node is judged before every agent had time to come back (restartGraceMs).
// That is the one-manager (SQLite) way; with several managers (etcd) ha/node-liveness.ts
// says which manager holds each session and the leader judges.

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

/** What the dispatcher tells of its sessions, for judging whether nodes live. */
export interface NodeLiveness {
  start(): void;
  stop(): void;
  /** The node's agent opened a session. */
  seen(nodeId: string): void;
  /** A heartbeat came down the node's session. */
  heartbeat(nodeId: string): void;
  /** The node's session ended, from either side. */
  ended(nodeId: string): void;
}

/** Makes the dispatcher's NodeLiveness, given how it ends a node's session from the manager's side. */
export type LivenessFactory = (endSession: (nodeId: string, why: string) => void) => NodeLiveness;

/** A heartbeat's news: the node is ready again if it was not. */
export function readyAgain(store: ClusterStore, cluster: Cluster, nodeId: string): void {
  if (store.node(nodeId)?.status.state !== "ready") inBackground(`marking node ${nodeId} ready`, cluster.setNodeState(nodeId, "ready", ""));
}

export class NodeHealth implements NodeLiveness {
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
    readyAgain(this.store, this.cluster, nodeId);
  }

  /** Nothing to do: a node without a session is judged by its missing heartbeats. */
  ended(): void {}

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
