// One session per agent: its node's view goes down (a full view, then versioned deltas) and acknowledgements
// come up; every commit of one event-loop turn reaches each affected session as one delta, at once. The views
// are held shared (core's SharedViews): a change is derived once per network and its parts are the same
// objects for every session that gets them, so the transport encodes each once.
// Node health (node-health.ts), the log relay (log-relay.ts) and the image relay (image-relay.ts) ride the same sessions.

import type { Assignment, LogRequest, wire } from "@vipmesh/api";
import { EventEmitter } from "node:events";
import {
  type DirtySet,
  emptyDelta,
  isTerminal,
  type NodeUpdate,
  nodeRemoved,
  notFound,
  type OverlayKeySet,
  SharedViews,
  type ViewDelta,
  type VipmeshError,
} from "@vipmesh/core";
import { inBackground } from "./background.ts";
import { FanoutPace } from "./fanout-pace.ts";
import type { Cluster } from "./cluster.ts";
import { ImageRelay } from "./image-relay.ts";
import { LogRelay } from "./log-relay.ts";
import { DEFAULT_HEARTBEAT_PERIOD_MS, type LivenessFactory, NodeHealth, type NodeLiveness } from "./node-health.ts";
import type { ClusterStore, Commit } from "./store/cluster-store.ts";

/** What goes down a session (server.ts puts it on the wire). */
export interface SessionMessage {
  params?: { nodeId: string; heartbeatPeriodMs: number };
  /** `delta` is the node's own part; `shared` parts go to other sessions too (the same objects) and follow it. */
  assignment?: Assignment & { shared?: readonly ViewDelta[] };
  logRequest?: { requestId: number; request: LogRequest };
  logCancel?: { requestId: number };
  imageLoad?: wire.ImageLoadData;
  imageRequest?: wire.ImageRequest;
  /** The managers' addresses, for the agent to fail over to. */
  managers?: string[];
}

/** One fan-out as the manager did it: how many sessions got something, and how long deriving and writing took. */
export interface Fanout {
  epoch: number;
  sessions: number;
  ms: number;
}

/** The transport side of a session, so that the dispatcher knows nothing of gRPC. */
export interface SessionChannel {
  send(msg: SessionMessage): void;
  close(error?: Error): void;
}

interface Session {
  nodeId: string;
  channel: SessionChannel;
  /** The epoch of the last assignment sent, and of the last one the agent applied. */
  version: number;
  acked: number;
  /** Whether it holds the current overlay keys. */
  hasKeys: boolean;
}

interface Dirty {
  nodes: Set<string>;
  networks: Set<string>;
  services: Set<string>;
  tasks: Set<string>;
}

const RECENT_FANOUTS = 1000;

const emptyDirty = (): Dirty => ({ nodes: new Set(), networks: new Set(), services: new Set(), tasks: new Set() });

const isEmptyDirty = (d: DirtySet): boolean => d.nodes.size + d.networks.size + d.services.size + d.tasks.size === 0;

export class Dispatcher extends EventEmitter<{ progress: [] }> {
  private readonly sessions = new Map<string, Session>();
  private readonly views: SharedViews;
  /** Counts flushes (and opened sessions, and key changes): every assignment's version is the epoch it was sent in. */
  private epoch = 0;
  private dirty = emptyDirty();
  /** The next flush, when one is scheduled: at once, or after the sessions applied the last one (fanout-pace.ts). */
  private flushTimer: { at: number; handle: NodeJS.Immediate | NodeJS.Timeout } | undefined;
  private readonly pace = new FanoutPace();
  /** The epoch of the last flush, which the pace waits for sessions to acknowledge. */
  private paced = 0;
  /** The last fan-outs (at most RECENT_FANOUTS), oldest first: what a benchmark reads. */
  readonly fanouts: Fanout[] = [];
  /**
   * Tasks being stopped, each with the view version every session that sees its
   * service must acknowledge before nothing balances new connections to it any more.
   */
  private readonly drains = new Map<string, Map<string, number>>();
  private unsubscribe: (() => void) | undefined;
  /** Where the cluster's managers are, for agents to fail over to (index.ts: the manager directory's addresses). */
  managers: () => readonly string[] = () => [];
  /** Tasks this manager's sessions no longer balance to (index.ts: with etcd, the managers' drain acknowledgements, ha/drain-acks.ts). */
  drained: (taskIds: string[]) => void = (taskIds) => inBackground("marking tasks drained", this.cluster.markDrained(taskIds));
  /** What managersChanged sent last. */
  private managersSent: string[] = [];
  readonly health: NodeLiveness;
  readonly logs: LogRelay;
  readonly images: ImageRelay;

  constructor(
    private readonly store: ClusterStore,
    private readonly cluster: Cluster,
    readonly heartbeatPeriodMs = DEFAULT_HEARTBEAT_PERIOD_MS,
    /** The overlay keys; undefined (a manager with --insecure) sends none: keys never travel in plaintext. */
    private overlayKeys?: OverlayKeySet,
    /** Who judges node liveness: this manager alone (SQLite), or the leader from what every manager says (ha/node-liveness.ts). */
    liveness: LivenessFactory = (end) => new NodeHealth(store, cluster, heartbeatPeriodMs, end),
  ) {
    super();
    this.views = new SharedViews(store);
    this.health = liveness((nodeId, why) => this.endSession(nodeId, why));
    this.logs = new LogRelay(
      (nodeId) => this.sessions.get(nodeId)?.channel,
      (nodeId) => this.hostname(nodeId),
    );
    this.images = new ImageRelay(
      (nodeId) => this.sessions.get(nodeId)?.channel,
      (nodeId) => this.hostname(nodeId),
    );
  }

  start(): void {
    this.views.load(this.store.list("service"), this.store.list("task"), this.store.list("network").map((n) => n.id));
    this.health.start();
    this.unsubscribe = this.store.subscribe((c) => this.onCommit(c));
  }

  stop(): void {
    this.unsubscribe?.();
    this.cancelFlush();
    this.health.stop();
    for (const s of this.sessions.values()) {
      this.logs.endSession(s.channel, "the manager is stopping");
      this.images.endSession(s.channel, "the manager is stopping");
      s.channel.close();
    }
    this.sessions.clear();
  }

  // ---- sessions ------------------------------------------------------------

  open(nodeId: string, channel: SessionChannel): void {
    const node = this.store.node(nodeId);
    if (!node) throw notFound(`node ${nodeId} is not registered; call Register first`);
    const previous = this.sessions.get(nodeId);
    if (previous) {
      this.logs.endSession(previous.channel, `node ${this.hostname(nodeId)} reconnected`);
      this.images.endSession(previous.channel, `node ${this.hostname(nodeId)} reconnected`);
      previous.channel.close(new Error("replaced by a newer session of the same node"));
    }
    const session: Session = { nodeId, channel, version: 0, acked: 0, hasKeys: false };
    this.sessions.set(nodeId, session);
    this.health.seen(nodeId);
    channel.send({ params: { nodeId, heartbeatPeriodMs: this.heartbeatPeriodMs } });
    const managers = this.managerAddrs();
    if (managers.length > 0) channel.send({ managers });
    inBackground(`marking node ${nodeId} ready`, this.cluster.setNodeState(nodeId, "ready", ""));
    // the full view goes now, with the changes still waiting for a flush sent first (the commit above, if any, is flushed later)
    if (!isEmptyDirty(this.dirty)) this.flush();
    const epoch = ++this.epoch;
    this.send(session, this.views.open(nodeId, epoch), epoch, true);
  }

  /** The managers' addresses as they are now (those that listen only on a socket have none). */
  private managerAddrs(): string[] {
    return this.managers().filter((a) => a !== "");
  }

  /** The managers' list may have changed: sends it to every session if it did (each new session gets it as it opens). */
  managersChanged(): void {
    const now = this.managerAddrs();
    if (now.length === this.managersSent.length && now.every((a, i) => a === this.managersSent[i])) return;
    this.managersSent = now;
    if (now.length > 0) for (const s of this.sessions.values()) s.channel.send({ managers: now });
  }

  /** Whether this manager holds the node's session. */
  holds(nodeId: string): boolean {
    return this.sessions.has(nodeId);
  }

  close(nodeId: string, channel: SessionChannel): void {
    const s = this.sessions.get(nodeId);
    if (s?.channel === channel) {
      this.sessions.delete(nodeId);
      this.views.close(nodeId);
      if (this.pace.done(nodeId)) this.scheduleFlush();
      this.health.ended(nodeId);
      this.logs.endSession(s.channel, `node ${this.hostname(nodeId)} disconnected`);
      this.images.endSession(s.channel, `node ${this.hostname(nodeId)} disconnected`);
      this.releaseDrains();
      this.emit("progress");
    }
  }

  ack(nodeId: string, version: number): void {
    const s = this.sessions.get(nodeId);
    if (!s || version <= s.acked || version > s.version) return;
    s.acked = version;
    if (version >= this.paced && this.pace.done(nodeId)) this.scheduleFlush();
    this.releaseDrains();
    this.emit("progress");
  }

  /** How many live sessions see `serviceId`, and how many of those applied its latest change. */
  acknowledgement(serviceId: string): { total: number; acked: number } {
    // while a change waits for its flush (the pace may hold it), no session has applied it yet
    const pending = !isEmptyDirty(this.dirty);
    let total = 0;
    let acked = 0;
    for (const [nodeId, changedAt] of this.views.watchers(serviceId)) {
      const s = this.sessions.get(nodeId);
      if (!s) continue;
      total++;
      if (!pending && s.acked >= changedAt) acked++;
    }
    return { total, acked };
  }

  private hostname(nodeId: string): string {
    return this.store.node(nodeId)?.description.hostname || nodeId;
  }

  // ---- pushing changes -----------------------------------------------------

  private onCommit(c: Commit): void {
    for (const ch of c.changes) {
      if (ch.kind === "node" && ch.action === "remove") this.endSession(ch.object.id, nodeRemoved(ch.object.id));
      if (ch.kind === "node" || ch.kind === "network" || ch.kind === "service" || ch.kind === "task") this.dirty[`${ch.kind}s`].add(ch.object.id);
    }
    this.scheduleFlush();
  }

  /** Schedules the flush of what changed: the next turn, or when the pace lets it go (sooner, if the pace now says so). */
  private scheduleFlush(): void {
    if (isEmptyDirty(this.dirty)) return;
    const at = performance.now() + this.pace.wait();
    if (this.flushTimer && this.flushTimer.at <= at) return;
    this.cancelFlush();
    const handle = at <= performance.now() ? setImmediate(() => this.flush()) : setTimeout(() => this.flush(), at - performance.now());
    this.flushTimer = { at, handle };
  }

  private cancelFlush(): void {
    if (!this.flushTimer) return;
    clearTimeout(this.flushTimer.handle as NodeJS.Timeout);
    clearImmediate(this.flushTimer.handle as NodeJS.Immediate);
    this.flushTimer = undefined;
  }

  private flush(): void {
    this.cancelFlush();
    const dirty = this.dirty;
    this.dirty = emptyDirty();
    if (isEmptyDirty(dirty)) return;
    const started = performance.now();
    const epoch = ++this.epoch;
    const sent: string[] = [];
    for (const u of this.views.refresh(dirty, epoch)) {
      const s = this.sessions.get(u.nodeId);
      if (!s) continue;
      this.send(s, u, epoch, false);
      sent.push(u.nodeId);
    }
    this.paced = epoch;
    this.pace.sent(sent);
    this.fanouts.push({ epoch, sessions: sent.length, ms: performance.now() - started });
    if (this.fanouts.length > RECENT_FANOUTS) this.fanouts.shift();
    this.startDrains(dirty.tasks);
    this.emit("progress");
  }

  /** For each task just told to stop: the versions that, once acknowledged, make it drained. */
  private startDrains(taskIds: Iterable<string>): void {
    for (const id of taskIds) {
      const t = this.store.task(id);
      if (t?.desiredState !== "shutdown" || t.drained || isTerminal(t.status.state) || this.drains.has(id)) continue;
      const barrier = new Map<string, number>();
      for (const nodeId of this.views.holders(t.networks.map((a) => a.networkId))) {
        const s = this.sessions.get(nodeId);
        if (s) barrier.set(nodeId, s.version);
      }
      this.drains.set(id, barrier);
    }
    this.releaseDrains();
  }

  /** Marks drained the tasks whose every barrier was acknowledged (or whose session went away). */
  private releaseDrains(): void {
    const done: string[] = [];
    for (const [taskId, barrier] of this.drains) {
      for (const [nodeId, version] of barrier) {
        const s = this.sessions.get(nodeId);
        if (!s || s.acked >= version) barrier.delete(nodeId);
      }
      if (barrier.size === 0) done.push(taskId);
    }
    for (const id of done) this.drains.delete(id);
    if (done.length > 0) this.drained(done);
  }

  private send(s: Session, u: NodeUpdate, epoch: number, full: boolean): void {
    s.version = epoch;
    // the keys go with the first view that holds an encrypted network, and again when they change
    const keys = this.overlayKeys && (full || !s.hasKeys) && this.views.holdsEncrypted(s.nodeId) ? this.overlayKeys : undefined;
    if (keys) s.hasKeys = true;
    s.channel.send({ assignment: { version: epoch, full, delta: u.own, shared: u.shared, ...(keys ? { encryption: keys } : {}) } });
  }

  /**
   * New overlay keys, sent to every node with an encrypted network; resolves
   * once each has applied them, or lost its session (it gets them anew when it comes back).
   */
  publishKeys(keys: OverlayKeySet): Promise<void> {
    this.overlayKeys = keys;
    const barrier = new Map<string, number>();
    const epoch = ++this.epoch;
    for (const s of this.sessions.values()) {
      s.hasKeys = false;
      if (!this.views.holdsEncrypted(s.nodeId)) continue;
      this.send(s, { nodeId: s.nodeId, own: emptyDelta(), shared: [] }, epoch, false);
      barrier.set(s.nodeId, s.version);
    }
    return new Promise((resolve) => {
      const check = () => {
        for (const [nodeId, version] of barrier) {
          const s = this.sessions.get(nodeId);
          if (!s || s.version < version || s.acked >= version) barrier.delete(nodeId);
        }
        if (barrier.size > 0) return;
        this.off("progress", check);
        resolve();
      };
      this.on("progress", check);
      check();
    });
  }

  /** Closes a node's session from this side, saying why: the agent comes back, unless `why` is an error that says otherwise. */
  private endSession(nodeId: string, why: string | VipmeshError): void {
    const s = this.sessions.get(nodeId);
    if (!s) return;
    const error = typeof why === "string" ? new Error(why) : why;
    this.sessions.delete(nodeId);
    this.views.close(nodeId);
    if (this.pace.done(nodeId)) this.scheduleFlush();
    this.health.ended(nodeId);
    this.logs.endSession(s.channel, `node ${this.hostname(nodeId)}: ${error.message}`);
    this.images.endSession(s.channel, `node ${this.hostname(nodeId)}: ${error.message}`);
    s.channel.close(error);
  }
}
