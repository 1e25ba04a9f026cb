// Node liveness with several managers: whichever manager holds a node's
// session says so in etcd, and the leader judges from that alone.
//
// - The holder puts NODES_PREFIX<nodeId>/<managerId> on its own lease when the
//   session opens (again on a heartbeat if a new lease lost it), and deletes
//   it when the session ends or the node misses its heartbeats (then it ends
//   the session too, as node-health.ts does with one manager). A manager that
//   dies takes its keys with its lease.
// - The leader (LivenessJudge) gives each node that is not down and has no key
//   a down timer: the missed-heartbeats window, or the longer restart grace
//   right after it took over (agents of a dead manager need time to reconnect
//   elsewhere). A key coming back cancels it; when it runs out the node is
//   marked down and the orchestrator moves its tasks. A new leader judges every
//   node afresh, so no timeout is lost in a handover.

import type { Etcd3 } from "@vipmesh/etcd";
import type { Cluster } from "../cluster.ts";
import { MISSED_HEARTBEATS_FOR_DOWN, type NodeLiveness, readyAgain } from "../node-health.ts";
import type { ClusterStore } from "../store/cluster-store.ts";
import type { LeaderLoop } from "./leadership.ts";
import type { ManagerLease } from "./manager-lease.ts";
import { PrefixWatch } from "./prefix-watch.ts";

export const NODES_PREFIX = "/vipmesh/ha/nodes/";
export const NO_SESSION = "no manager holds a session with it";
const DEADLINE_MS = 3000;
const RETRY_MS = 500;
const JUDGE_TICK_MS = 100;
/** A node whose marking down failed (no quorum, say) is tried again after this. */
const MARK_RETRY_MS = 1000;

/** The liveness keys of the nodes whose sessions this manager holds, on its lease. */
export class SessionKeys {
  /** Nodes with a session here. */
  private readonly held = new Set<string>();
  /** Nodes whose key is on the current lease. */
  private readonly written = new Set<string>();
  /** Per node, the etcd call under way: calls of one node never overlap, and each does what the node needs when it runs. */
  private readonly busy = new Map<string, Promise<void>>();
  private unsubscribe: (() => void) | undefined;

  constructor(
    private readonly client: Etcd3,
    private readonly lease: ManagerLease,
    private readonly managerId: string,
  ) {}

  start(): void {
    this.unsubscribe = this.lease.onGranted(() => {
      this.written.clear(); // they went with the old lease
      for (const n of this.held) this.sync(n);
    });
  }

  stop(): void {
    this.unsubscribe?.();
  }

  /** A session opened here. */
  hold(nodeId: string): void {
    this.held.add(nodeId);
    this.sync(nodeId);
  }

  /** A heartbeat: puts the key again if it was lost. */
  refresh(nodeId: string): void {
    if (this.held.has(nodeId) && !this.written.has(nodeId)) this.sync(nodeId);
  }

  /** The session ended, or the node missed its heartbeats. */
  release(nodeId: string): void {
    this.held.delete(nodeId);
    this.sync(nodeId);
  }

  private sync(nodeId: string): void {
    if (this.busy.has(nodeId)) return; // the call under way looks again when it ends
    const run = this.step(nodeId).finally(() => {
      this.busy.delete(nodeId);
      if (this.held.has(nodeId) !== this.written.has(nodeId) && this.lease.id() !== undefined) {
        setTimeout(() => this.sync(nodeId), RETRY_MS).unref();
      }
    });
    this.busy.set(nodeId, run);
  }

  private async step(nodeId: string): Promise<void> {
    const key = `${NODES_PREFIX}${nodeId}/${this.managerId}`;
    const deadline = Date.now() + DEADLINE_MS;
    try {
      const lease = this.lease.id();
      if (this.held.has(nodeId) && !this.written.has(nodeId) && lease !== undefined) {
        await this.client.put(key).value("").lease(lease).options({ deadline });
        if (this.lease.id() === lease) this.written.add(nodeId);
      } else if (!this.held.has(nodeId)) {
        this.written.delete(nodeId);
        await this.client.delete().key(key).options({ deadline });
      }
    } catch {
      // tried again (sync's finally) while the lease holds; a lost lease takes the key anyway
      if (!this.held.has(nodeId)) this.written.add(nodeId);
    }
  }
}

/**
 * The dispatcher's NodeLiveness with several managers: a session here holds
 * its node's key; a node that misses its heartbeats loses the key and its
 * session (node-health.ts's rule, for this manager's sessions only); the
 * leader, not this manager, marks it down.
 */
export class SessionLiveness implements NodeLiveness {
  private readonly lastSeen = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly keys: SessionKeys,
    private readonly store: ClusterStore,
    private readonly cluster: Cluster,
    private readonly heartbeatPeriodMs: number,
    private readonly endSession: (nodeId: string, why: string) => void,
  ) {}

  start(): void {
    this.keys.start();
    this.timer = setInterval(() => this.check(), Math.max(50, this.heartbeatPeriodMs / 2)).unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.keys.stop();
  }

  seen(nodeId: string): void {
    this.lastSeen.set(nodeId, Date.now());
    this.keys.hold(nodeId);
  }

  heartbeat(nodeId: string): void {
    if (!this.lastSeen.has(nodeId)) return; // its session ended here a moment ago
    this.lastSeen.set(nodeId, Date.now());
    this.keys.refresh(nodeId);
    readyAgain(this.store, this.cluster, nodeId);
  }

  ended(nodeId: string): void {
    this.lastSeen.delete(nodeId);
    this.keys.release(nodeId);
  }

  private check(): void {
    const deadline = Date.now() - this.heartbeatPeriodMs * MISSED_HEARTBEATS_FOR_DOWN;
    for (const [nodeId, seen] of this.lastSeen) {
      if (seen < deadline) this.endSession(nodeId, `no heartbeat for ${MISSED_HEARTBEATS_FOR_DOWN} periods: session ended (the leader marks the node down unless it comes back)`);
    }
  }
}

/**
 * The leader's down timers, free of etcd and clocks (unit-tested). `observe`
 * is called on every change of the keys or nodes and on a tick.
 */
export class DownTimers {
  private readonly deadlines = new Map<string, number>();
  private graceUntil = 0;

  constructor(
    /** The missed-heartbeats window. */
    private readonly windowMs: number,
    /** node-health.ts restartGraceMs: how long agents may take to come back after a manager restart. */
    private readonly graceMs: number,
  ) {}

  /** Judging starts (this manager just took over): no node is judged before the grace ends. */
  begin(now: number): void {
    this.deadlines.clear();
    this.graceUntil = now + this.graceMs;
  }

  /** The nodes to mark down now; each is returned again every MARK_RETRY_MS until it is down or has a key. */
  observe(now: number, nodes: Iterable<{ id: string; down: boolean }>, hasKey: (nodeId: string) => boolean): string[] {
    const due: string[] = [];
    const present = new Set<string>();
    for (const n of nodes) {
      present.add(n.id);
      if (n.down || hasKey(n.id)) {
        this.deadlines.delete(n.id);
        continue;
      }
      let deadline = this.deadlines.get(n.id);
      if (deadline === undefined) this.deadlines.set(n.id, (deadline = Math.max(now + this.windowMs, this.graceUntil)));
      if (now >= deadline) {
        due.push(n.id);
        this.deadlines.set(n.id, now + MARK_RETRY_MS);
      }
    }
    for (const id of this.deadlines.keys()) if (!present.has(id)) this.deadlines.delete(id);
    return due;
  }
}

export interface JudgeOptions {
  windowMs: number;
  graceMs: number;
  /** Every node of the cluster, from the store's cache. */
  nodes: () => Iterable<{ id: string; down: boolean }>;
  /** Marks a node down, saying why; a failure is logged and tried again. */
  markDown: (nodeId: string, why: string) => Promise<void> | void;
  log?: (line: string) => void;
}

/** The leader's loop over the liveness keys (start on gaining leadership, stop on losing it). */
export class LivenessJudge implements LeaderLoop {
  private readonly timers: DownTimers;
  private watch: PrefixWatch | undefined;
  private tick: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private keyed = new Set<string>();
  private loaded = false;

  constructor(
    private readonly client: Etcd3,
    private readonly o: JudgeOptions,
  ) {
    this.timers = new DownTimers(o.windowMs, o.graceMs);
  }

  start(): void {
    this.timers.begin(Date.now());
    this.loaded = false;
    const watch = new PrefixWatch(this.client, NODES_PREFIX, () => {
      this.keyed = new Set([...watch.entries.keys()].map((k) => k.slice(0, k.indexOf("/"))));
      this.loaded = true;
      this.judge();
    });
    this.watch = watch;
    const load = () =>
      watch.start().catch(() => {
        if (this.watch === watch) this.retry = setTimeout(load, RETRY_MS);
      });
    void load();
    this.tick = setInterval(() => this.judge(), JUDGE_TICK_MS);
  }

  stop(): void {
    clearInterval(this.tick);
    clearTimeout(this.retry);
    this.watch?.stop();
    this.watch = undefined;
  }

  /** Call after nodes changed (one registered, one came back): a new node without a key gets its timer from now. */
  judge(): void {
    if (!this.loaded) return;
    for (const id of this.timers.observe(Date.now(), this.o.nodes(), (n) => this.keyed.has(n))) {
      Promise.resolve()
        .then(() => this.o.markDown(id, NO_SESSION))
        .catch((err: unknown) => this.o.log?.(`node liveness: cannot mark node ${id} down (tried again): ${err instanceof Error ? err.message : String(err)}`));
    }
  }
}
