// One session per agent: the node's assignment goes down (a full view first,
// then deltas, each with a version), heartbeats, task status and view
// acknowledgements come up. Commits are coalesced: every commit made in one
// turn of the event loop reaches each affected session as one delta, at once.
// Node health lives here too: a node that misses 3 heartbeats is down.

import { EventEmitter } from "node:events";
import {
  type NetworkView,
  type Service,
  type Task,
  type ViewDelta,
  computeNetworkView,
  emptyView,
  isEmptyDelta,
  refreshNetworkView,
  diffNetworkViews,
  notFound,
} from "@vipmesh/core";
import type { Cluster } from "./cluster.ts";
import type { ClusterStore, Commit } from "./store/cluster-store.ts";

export const DEFAULT_HEARTBEAT_PERIOD_MS = 5000;
export const MISSED_HEARTBEATS_FOR_DOWN = 3;

/** The transport side of a session, so that the dispatcher knows nothing of gRPC. */
export interface SessionChannel {
  send(msg: { params?: { nodeId: string; heartbeatPeriodMs: number }; assignment?: Assignment }): void;
  close(error?: Error): void;
}

export interface Assignment extends ViewDelta {
  version: number;
  full: boolean;
}

interface Session {
  nodeId: string;
  channel: SessionChannel;
  view: NetworkView;
  version: number;
  acked: number;
  /** Per service: the version of the last assignment that changed what this node sees of it. */
  serviceVersions: Map<string, number>;
}

interface Dirty {
  nodes: Set<string>;
  networks: Set<string>;
  services: Set<string>;
  tasks: Set<string>;
  /** Service of every dirty task, removed ones included. */
  taskServices: Set<string>;
  /** Networks of dirty tasks and services: only views holding one of them can change... */
  touchedNetworks: Set<string>;
  /** ...or views of the nodes that run (or ran) a dirty task. */
  taskNodes: Set<string>;
}

const emptyDirty = (): Dirty => ({
  nodes: new Set(),
  networks: new Set(),
  services: new Set(),
  tasks: new Set(),
  taskServices: new Set(),
  touchedNetworks: new Set(),
  taskNodes: new Set(),
});

/** Whether a change can touch what this session's node sees (a cheap test before the real refresh). */
function mayAffect(s: Session, dirty: Dirty): boolean {
  if (dirty.nodes.size > 0 || dirty.networks.size > 0) return true;
  if (dirty.taskNodes.has(s.nodeId)) return true;
  for (const id of dirty.touchedNetworks) if (s.view.networks.has(id)) return true;
  for (const id of dirty.services) if (s.view.services.has(id)) return true;
  return false;
}

export class Dispatcher extends EventEmitter<{ progress: [] }> {
  private readonly sessions = new Map<string, Session>();
  private readonly lastSeen = new Map<string, number>();
  private dirty = emptyDirty();
  private flushScheduled = false;
  private unsubscribe: (() => void) | undefined;
  private healthTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: ClusterStore,
    private readonly cluster: Cluster,
    readonly heartbeatPeriodMs = DEFAULT_HEARTBEAT_PERIOD_MS,
  ) {
    super();
  }

  start(): void {
    const now = Date.now();
    // nodes known before a restart get a full grace period to reconnect
    for (const n of this.store.list("node")) this.lastSeen.set(n.id, now);
    this.unsubscribe = this.store.subscribe((c) => this.onCommit(c));
    this.healthTimer = setInterval(() => this.checkHealth(), Math.max(50, this.heartbeatPeriodMs / 2)).unref();
  }

  stop(): void {
    this.unsubscribe?.();
    clearInterval(this.healthTimer);
    for (const s of this.sessions.values()) s.channel.close();
    this.sessions.clear();
  }

  // ---- sessions ------------------------------------------------------------

  open(nodeId: string, channel: SessionChannel): void {
    const node = this.store.node(nodeId);
    if (!node) throw notFound(`node ${nodeId} is not registered; call Register first`);
    this.sessions.get(nodeId)?.channel.close(new Error("replaced by a newer session of the same node"));
    const session: Session = { nodeId, channel, view: emptyView(), version: 0, acked: 0, serviceVersions: new Map() };
    this.sessions.set(nodeId, session);
    this.lastSeen.set(nodeId, Date.now());
    channel.send({ params: { nodeId, heartbeatPeriodMs: this.heartbeatPeriodMs } });
    this.cluster.setNodeState(nodeId, "ready", "");
    // the commit above (if any) is flushed later; the full view goes now
    const view = computeNetworkView(this.store, nodeId);
    const delta = diffNetworkViews(emptyView(), view);
    session.view = view;
    this.send(session, delta, true, new Set([...view.services.keys(), ...[...view.tasks.values()].map((t) => t.serviceId)]));
  }

  close(nodeId: string, channel: SessionChannel): void {
    const s = this.sessions.get(nodeId);
    if (s?.channel === channel) {
      this.sessions.delete(nodeId);
      this.emit("progress");
    }
  }

  heartbeat(nodeId: string): void {
    this.lastSeen.set(nodeId, Date.now());
    if (this.store.node(nodeId)?.status.state !== "ready") this.cluster.setNodeState(nodeId, "ready", "");
  }

  ack(nodeId: string, version: number): void {
    const s = this.sessions.get(nodeId);
    if (!s || version <= s.acked || version > s.version) return;
    s.acked = version;
    this.emit("progress");
  }

  /** How many live sessions see `serviceId`, and how many of those applied its latest change. */
  acknowledgement(serviceId: string): { total: number; acked: number } {
    let total = 0;
    let acked = 0;
    for (const s of this.sessions.values()) {
      const v = s.serviceVersions.get(serviceId);
      if (v === undefined) continue;
      total++;
      if (s.acked >= v) acked++;
    }
    return { total, acked };
  }

  /** Node IDs with an open session. */
  connectedNodes(): string[] {
    return [...this.sessions.keys()];
  }

  // ---- pushing changes -----------------------------------------------------

  private onCommit(c: Commit): void {
    for (const ch of c.changes) {
      switch (ch.kind) {
        case "node":
          this.dirty.nodes.add(ch.object.id);
          break;
        case "network":
          this.dirty.networks.add(ch.object.id);
          break;
        case "service":
          this.dirty.services.add(ch.object.id);
          for (const n of (ch.object as Service).spec.networks) this.dirty.touchedNetworks.add(n.target);
          break;
        case "task": {
          const t = ch.object as Task;
          this.dirty.tasks.add(t.id);
          this.dirty.taskServices.add(t.serviceId);
          if (t.nodeId) this.dirty.taskNodes.add(t.nodeId);
          for (const a of t.networks) this.dirty.touchedNetworks.add(a.networkId);
          break;
        }
      }
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const dirty = this.dirty;
    this.dirty = emptyDirty();
    for (const s of this.sessions.values()) {
      if (!mayAffect(s, dirty)) continue;
      const delta = refreshNetworkView(this.store, s.nodeId, s.view, dirty);
      if (isEmptyDelta(delta)) continue;
      const involved = new Set<string>();
      for (const x of delta.services) involved.add(x.id);
      for (const x of delta.removedServices) involved.add(x);
      for (const x of delta.endpoints) involved.add(x.serviceId);
      for (const x of delta.tasks) involved.add(x.serviceId);
      for (const id of [...dirty.services, ...dirty.taskServices]) if (s.serviceVersions.has(id)) involved.add(id);
      this.send(s, delta, false, involved);
    }
    this.emit("progress");
  }

  private send(s: Session, delta: ViewDelta, full: boolean, involved: Iterable<string>): void {
    s.version++;
    for (const id of involved) s.serviceVersions.set(id, s.version);
    s.channel.send({ assignment: { ...delta, version: s.version, full } });
  }

  // ---- node health ---------------------------------------------------------

  private checkHealth(): void {
    const deadline = Date.now() - this.heartbeatPeriodMs * MISSED_HEARTBEATS_FOR_DOWN;
    for (const n of this.store.list("node")) {
      if (n.status.state === "down") continue;
      const seen = this.lastSeen.get(n.id) ?? 0;
      if (seen < deadline) {
        this.cluster.setNodeState(n.id, "down", `no heartbeat for ${MISSED_HEARTBEATS_FOR_DOWN} periods`);
        const s = this.sessions.get(n.id);
        if (s) {
          this.sessions.delete(n.id);
          s.channel.close(new Error("heartbeats missed: node marked down"));
        }
      }
    }
  }
}
