// Turns services into tasks and tasks into placements, in one reconcile pass
// per batch of commits: replicas → slots, global → one task per eligible node,
// ended tasks replaced by their restart policy (restart.ts), orphaned ones at once, tasks on down or
// drained nodes moved, rolling updates paced by parallelism and delay with a
// failure action, and old task history trimmed.

import {
  type Node,
  NodeLoad,
  type Service,
  type Task,
  byHostname,
  eligibleNodes,
  hostPortReason,
  hostPortsInUse,
  hostPortsOf,
  isTaskCurrent,
  isTaskReady,
  isTerminal,
  noNodeReason,
  pickNodeInOrder,
  type PlacementLoad,
  type TaskSpec,
  taskRuntime,
  type UpdateConfig,
  useHostPorts,
  VipmeshError,
  withHostPortsFree,
  withResourcesFree,
} from "@vipmesh/core";
import type { Allocator } from "./allocator.ts";
import type { Cluster } from "./cluster.ts";
import { newId } from "./ids.ts";
import { decideSlot, RestartHistory } from "./restart.ts";
import type { ClusterStore, Commit, Tx } from "./store/cluster-store.ts";

export interface OrchestratorOptions {
  /** Wait before replacing a task that failed, so a crashing task does not spin (swarm: 5 s); a task's restart policy may say otherwise. */
  restartDelayMs?: number;
  /** Terminal tasks kept per slot for `service ps` (swarm: 5). */
  taskHistoryLimit?: number;
}

/** An update that failed and was rolled back by its failure action (not a rollback someone asked for). */
export const isAutoRollback = (s: Service): boolean =>
  s.updateStatus.state.startsWith("rollback_") && s.updateStatus.failedUpdate === true;

/** What fails an update when a task of its new spec comes to it. */
const ENDED_EARLY: ReadonlySet<Task["status"]["state"]> = new Set(["failed", "rejected", "complete"]);
const isLive = (t: Task) => t.desiredState === "running" && !isTerminal(t.status.state);
const isUnfinished = (t: Task) => !isTerminal(t.status.state);
const slotKey = (t: Task) => (t.slot > 0 ? `s${t.slot}` : `n${t.nodeId}`);

/**
 * A node back from down keeps the tasks it still runs that nothing replaced
 * yet: an orphaned task whose slot holds no task placed since (a replacement
 * still pending is dropped) runs on, if its addresses are still free. Called
 * in the transaction that marks the node ready, before its view is sent, so
 * its agent never sees the task gone; the agent then reports its real state.
 */
export function reclaimOrphans(tx: Tx, allocator: Allocator, nodeId: string): void {
  for (const t of tx.tasksOfNode(nodeId)) {
    if (t.status.state !== "orphaned" || !tx.get("service", t.serviceId)) continue;
    const rivals = tx.tasksOfService(t.serviceId).filter((o) => o.id !== t.id && slotKey(o) === slotKey(t) && !isTerminal(o.status.state));
    if (rivals.some((o) => o.status.state !== "pending")) continue; // replaced: it drains on its node
    if (!allocator.reclaimTaskAddresses(tx, t)) continue;
    for (const o of rivals) {
      allocator.releaseTaskAddresses(tx, o);
      tx.put("task", { ...o, desiredState: "shutdown", status: { ...o.status, state: "shutdown", message: `task ${t.id} came back with its node`, timestamp: tx.now } });
    }
    tx.put("task", { ...t, desiredState: "running", status: { ...t.status, state: "running", message: "its node came back with it", timestamp: tx.now } });
  }
}

export class Orchestrator {
  private readonly dirty = new Set<string>();
  /** Services with a task pending for want of room for its reservations: a task that stops anywhere gives room back. */
  private readonly waitingForRoom = new Set<string>();
  private allDirty = true;
  private scheduled = false;
  private running = false;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Per service being updated: when its last batch was all running (--update-delay counts from there). */
  private readonly pacing = new Map<string, { doneAt?: number }>();
  private readonly restarts = new RestartHistory();
  /** Live tasks and reservations per node, from every commit and from this pass's placements (undone with their transaction). */
  private load = new NodeLoad();
  private unsubscribe: (() => void) | undefined;
  private readonly restartDelayMs: number;
  private readonly historyLimit: number;

  constructor(
    private readonly store: ClusterStore,
    private readonly allocator: Allocator,
    private readonly cluster: Cluster,
    options: OrchestratorOptions = {},
  ) {
    this.restartDelayMs = options.restartDelayMs ?? 5000;
    this.historyLimit = options.taskHistoryLimit ?? 5;
  }

  /** Starts reconciling (again, on a manager that becomes the leader): every service is looked at first. */
  start(): void {
    this.running = true;
    this.allDirty = true;
    this.load = new NodeLoad(this.store.all("task"));
    this.unsubscribe = this.store.subscribe((c) => this.onCommit(c));
    this.kick();
  }

  /** Stops reconciling (a manager that loses leadership): nothing already scheduled runs. */
  stop(): void {
    this.running = false;
    this.unsubscribe?.();
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private onCommit(c: Commit): void {
    for (const ch of c.changes) {
      if (ch.kind === "service") this.dirty.add(ch.object.id);
      else if (ch.kind === "task") {
        const t = ch.object as Task;
        this.load.set(t.id, ch.action === "remove" ? undefined : t);
        this.dirty.add(t.serviceId);
        if (ch.action === "remove" || t.desiredState !== "running" || isTerminal(t.status.state)) this.roomFreed();
      }
      else if (ch.kind === "node") this.allDirty = true;
    }
    this.kick();
  }

  private kick(): void {
    if (this.scheduled || !this.running) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.running) this.reconcile();
    });
  }

  private roomFreed(): void {
    for (const id of this.waitingForRoom) this.dirty.add(id);
    this.waitingForRoom.clear();
  }

  private later(serviceId: string, ms: number): void {
    if (this.timers.has(serviceId)) return;
    this.timers.set(
      serviceId,
      setTimeout(() => {
        this.timers.delete(serviceId);
        this.dirty.add(serviceId);
        this.kick();
      }, ms).unref(),
    );
  }

  /** One pass over the dirty services, a transaction each so that one service's trouble stays its own. */
  reconcile(): void {
    const ids = this.allDirty ? this.store.list("service").map((s) => s.id) : [...this.dirty];
    this.allDirty = false;
    this.dirty.clear();
    if (ids.length === 0) return;
    // the nodes a spec may run on, looked at once per pass for all the services that share its runtime and constraints;
    // looked at afresh when a change runs again (another manager wrote first)
    let eligible = new Map<string, Node[]>();
    const eligibleFor = (spec: TaskSpec): Node[] => {
      const key = [taskRuntime(spec.container), ...spec.placement.constraints].join("\0");
      let nodes = eligible.get(key);
      if (!nodes) eligible.set(key, (nodes = byHostname(eligibleNodes(this.store.nodes(), spec))));
      return nodes;
    };
    // not awaited: each runs at once on the ones before it, and the pass is committed as one (the tasks and their cause reach agents as one delta)
    this.store.together(() => {
      for (const id of ids) {
        let runs = 0;
        this.store
          .update((tx) => {
            if (runs++ > 0) eligible = new Map();
            const s = tx.get("service", id);
            if (s) this.reconcileService(tx, s, eligibleFor);
            else this.restarts.forget(id);
          })
          .catch((err: unknown) => {
            console.error(`orchestrator: service ${id}: ${err instanceof Error ? err.message : String(err)}`);
            this.later(id, 1000);
          });
      }
    });
  }

  private reconcileService(tx: Tx, service: Service, eligibleFor: (spec: TaskSpec) => Node[]): void {
    let s = service;
    const now = Date.now();

    // tasks whose node is gone or down are orphaned; tasks on drained nodes stop
    for (const t of tx.tasksOfService(s.id)) {
      if (!t.nodeId || t.status.state === "pending" || !isUnfinished(t)) continue;
      const node = tx.get("node", t.nodeId);
      if (!node || node.status.state === "down") {
        this.finish(tx, t, "orphaned", `node ${node?.description.hostname ?? t.nodeId} is down`);
      } else if (t.desiredState === "running" && node.spec.availability === "drain") {
        tx.put("task", { ...t, desiredState: "shutdown" });
      }
    }
    // tasks told to stop that never reached their node stop at once
    for (const t of tx.tasksOfService(s.id)) {
      if (t.desiredState === "shutdown" && t.status.state === "pending") this.finish(tx, t, "shutdown", "removed before it was scheduled");
    }

    s = this.watchUpdateFailures(tx, s);
    const tasks = tx.tasksOfService(s.id);
    const live = tasks.filter(isLive);
    const eligible = eligibleFor(s.spec.taskTemplate);

    // wanted slots: 1..replicas, or one per eligible node
    const wanted: { key: string; slot: number; nodeId: string }[] = s.spec.global
      ? eligible.map((n) => ({ key: `n${n.id}`, slot: 0, nodeId: n.id }))
      : Array.from({ length: s.spec.replicated?.replicas ?? 0 }, (_, i) => ({ key: `s${i + 1}`, slot: i + 1, nodeId: "" }));
    const wantedKeys = new Set(wanted.map((w) => w.key));

    for (const t of live) if (!wantedKeys.has(slotKey(t))) this.shutdown(tx, t);

    const bySlot = new Map<string, Task[]>();
    for (const t of live) if (wantedKeys.has(slotKey(t))) bySlot.set(slotKey(t), [...(bySlot.get(slotKey(t)) ?? []), t]);

    let restarting = false;
    for (const w of wanted) {
      const inSlot = bySlot.get(w.key) ?? [];
      if (inSlot.length === 0) {
        const next = decideSlot(s, w.key, tasks.filter((t) => slotKey(t) === w.key), this.restarts, this.restartDelayMs, now);
        if (next.action === "wait") this.later(s.id, next.ms);
        restarting ||= next.action === "wait";
        if (next.action !== "create") continue;
        if (next.restart) this.restarts.record(s.id, w.key, s.specVersion, now, next.restart.maxAttempts);
        this.createTask(tx, s, w.slot, w.nodeId);
      } else if (inSlot.length > 1) {
        // start-first updates leave two tasks in a slot: keep the newest once it runs
        const rank = (t: Task) => `${isTaskCurrent(t, s) ? 1 : 0}${t.createdAt}`;
        const newest = inSlot.reduce((a, b) => (rank(a) > rank(b) ? a : b));
        if (newest.status.state === "running") for (const t of inSlot) if (t !== newest) this.shutdown(tx, t);
      }
    }

    s = this.advanceUpdate(tx, s, now, restarting);
    this.schedule(tx, s, eligible);
    this.trimHistory(tx, s);
  }

  private createTask(tx: Tx, s: Service, slot: number, nodeId: string): void {
    const id = newId();
    const networks = s.spec.networks.map((n) => ({ networkId: n.target, addresses: [] as string[] }));
    const hostPorts = hostPortsOf(s.spec);
    tx.put("task", {
      id,
      version: 0,
      createdAt: "",
      updatedAt: "",
      serviceId: s.id,
      serviceName: s.spec.annotations.name,
      slot,
      // a global task is meant for its node from the start; schedule() assigns it once addressed
      nodeId,
      specVersion: s.specVersion,
      spec: s.spec.taskTemplate,
      desiredState: "running",
      status: { state: "pending", timestamp: tx.now, message: "pending task scheduling", err: "", health: "" },
      networks,
      ...(hostPorts.length > 0 ? { hostPorts } : {}),
    });
  }

  /**
   * Gives a task an address on each of its networks. A network that has none
   * left keeps the task pending with the reason (as swarm does) instead of
   * failing the whole service; it is retried on the next pass.
   */
  private addressTask(tx: Tx, t: Task): boolean {
    if (t.networks.every((a) => a.addresses.length > 0)) return true;
    const taken: { networkId: string; addr: string }[] = [];
    try {
      const networks = t.networks.map((a) => {
        if (a.addresses.length > 0) return a;
        const addr = this.allocator.allocateAddress(tx, a.networkId);
        taken.push({ networkId: a.networkId, addr });
        return { ...a, addresses: [addr] };
      });
      tx.put("task", { ...t, networks });
      return true;
    } catch (err) {
      if (!(err instanceof VipmeshError) || err.code !== "resource_exhausted") throw err;
      for (const a of taken) this.allocator.releaseAddress(tx, a.networkId, a.addr);
      if (t.status.err !== err.message) tx.put("task", { ...t, status: { ...t.status, err: err.message } });
      this.later(t.serviceId, 1000);
      return false;
    }
  }

  /** Places a task, counted at once for the placements after it (this pass's, a batch's), and no longer if its transaction fails. */
  private assign(tx: Tx, t: Task, nodeId: string): void {
    const placed = tx.put("task", { ...t, nodeId, status: { ...t.status, state: "assigned", timestamp: tx.now, message: "assigned", err: "" } });
    const before = this.load.countedAs(t.id);
    this.load.set(t.id, placed);
    tx.onRollback(() => this.load.set(t.id, before));
  }

  private shutdown(tx: Tx, t: Task): void {
    if (t.status.state === "pending") this.finish(tx, t, "shutdown", "removed before it was scheduled");
    else if (t.desiredState !== "shutdown") tx.put("task", { ...t, desiredState: "shutdown" });
  }

  private finish(tx: Tx, t: Task, state: "orphaned" | "shutdown", message: string): void {
    this.allocator.releaseTaskAddresses(tx, t);
    tx.put("task", { ...t, desiredState: "shutdown", status: { ...t.status, state, message, timestamp: tx.now } });
  }

  /**
   * Pending tasks get their addresses, then a node: their own (global) or the
   * best spread, among the eligible nodes with room for their reservations and
   * their host-mode ports free.
   */
  private schedule(tx: Tx, s: Service, eligible: Node[]): void {
    this.waitingForRoom.delete(s.id);
    const pending = tx
      .tasksOfService(s.id)
      .filter((t) => isLive(t) && t.status.state === "pending")
      .filter((t) => this.addressTask(tx, t))
      .map((t) => tx.get("task", t.id)!);
    if (pending.length === 0) return;
    const serviceLoad = new Map<string, number>();
    for (const t of tx.tasksOfService(s.id)) {
      if (isLive(t) && t.nodeId && t.status.state !== "pending") serviceLoad.set(t.nodeId, (serviceLoad.get(t.nodeId) ?? 0) + 1);
    }
    const load: PlacementLoad = { serviceTasks: serviceLoad, allTasks: this.load.tasks };
    const reserved = this.load.reserved;
    const portsInUse = pending.some((t) => t.hostPorts?.length) ? hostPortsInUse(tx.list("task")) : new Map<string, Set<string>>();
    for (const t of pending.sort((a, b) => a.slot - b.slot)) {
      const fitting = t.nodeId ? eligible.filter((n) => n.id === t.nodeId) : eligible;
      const roomy = withResourcesFree(fitting, t.spec, reserved);
      const free = withHostPortsFree(roomy, t.hostPorts ?? [], portsInUse);
      const node = pickNodeInOrder(free, load); // the filters keep the eligible nodes' order
      if (!node) {
        const noRoom = roomy.length < fitting.length;
        const blocked = free.length < roomy.length;
        const reason = blocked
          ? hostPortReason(t.hostPorts ?? [], roomy.length)
          : noNodeReason(t.nodeId ? [tx.get("node", t.nodeId)].filter((n) => n !== undefined) : this.store.list("node"), t.spec, reserved);
        // as swarm: the reason is the pending task's error, shown by `service ps`
        if (t.status.err !== reason) tx.put("task", { ...t, status: { ...t.status, err: reason } });
        // another service's task may free the port: nothing of this service's changes then
        if (blocked) this.later(s.id, 1000);
        // a task that stops anywhere may give room back (onCommit)
        if (noRoom) this.waitingForRoom.add(s.id);
        continue;
      }
      useHostPorts(portsInUse, node.id, t.hostPorts ?? []);
      this.assign(tx, t, node.id);
      serviceLoad.set(node.id, (serviceLoad.get(node.id) ?? 0) + 1);
    }
  }

  // ---- rolling updates -----------------------------------------------------

  private updating(s: Service): boolean {
    return s.updateStatus.state === "updating" || s.updateStatus.state === "rollback_started";
  }

  private configOf(s: Service): UpdateConfig {
    return s.updateStatus.state === "rollback_started" ? s.spec.rollbackConfig : s.spec.updateConfig;
  }

  /**
   * A task of the new spec that failed or ended early (complete too, as
   * swarmkit's updater judges) during the update triggers the failure action.
   * Messages are Docker's, with what happened to the task after them.
   */
  private watchUpdateFailures(tx: Tx, s: Service): Service {
    if (!this.updating(s)) return s;
    const failed = tx
      .tasksOfService(s.id)
      .find((t) => isTaskCurrent(t, s) && ENDED_EARLY.has(t.status.state) && t.createdAt >= s.updateStatus.startedAt);
    const config = this.configOf(s);
    if (!failed || config.failureAction === "continue") return s;
    const detail = failed.status.err || failed.status.message;
    const what = detail && detail !== failed.status.state ? `${failed.status.state}: ${detail}` : failed.status.state;
    const cause = (verb: string) => `${verb} due to failure or early termination of task ${failed.id} (${what})`;
    if (s.updateStatus.state === "updating" && config.failureAction === "rollback" && s.previousSpec) {
      const rolled = this.cluster.withSpec(tx, s, s.previousSpec, "rollback_started");
      return tx.put("service", {
        ...rolled,
        updateStatus: { ...rolled.updateStatus, message: cause("update rolled back"), failedUpdate: true },
      });
    }
    const state = s.updateStatus.state === "updating" ? "paused" : "rollback_paused";
    return tx.put("service", {
      ...s,
      updateStatus: { ...s.updateStatus, state, message: cause(state === "paused" ? "update paused" : "rollback paused") },
    });
  }

  /** `restarting`: a slot waits for its restart delay; the update is not done before its new task ran through the monitor. */
  private advanceUpdate(tx: Tx, s: Service, now: number, restarting: boolean): Service {
    if (!this.updating(s) || restarting) return s;
    const live = tx.tasksOfService(s.id).filter(isLive);
    const outdated = live.filter((t) => !isTaskCurrent(t, s)).sort((a, b) => a.slot - b.slot);
    // a batch takes connections (running, healthy if checked: Docker's task is "starting" till then) before the next one starts
    const inFlight = live.filter((t) => isTaskCurrent(t, s) && !isTaskReady(t));
    if (inFlight.length > 0) return s;
    const config = this.configOf(s);
    // a new task counts once it kept running (its last status change, healthy included) for --update-monitor;
    // failing before that fails the update, and the update completes only after the last one's monitor
    const settledAt = Math.max(
      0,
      ...live
        .filter((t) => isTaskCurrent(t, s) && t.createdAt >= s.updateStatus.startedAt)
        .map((t) => Date.parse(t.status.timestamp) + config.monitorMs),
    );
    if (settledAt > now) {
      this.later(s.id, settledAt - now);
      return s;
    }
    if (outdated.length === 0) {
      this.pacing.delete(s.id);
      const rollback = s.updateStatus.state === "rollback_started";
      const message = rollback
        ? isAutoRollback(s) ? s.updateStatus.message : "rollback completed"
        : "update completed";
      return tx.put("service", {
        ...s,
        updateStatus: { ...s.updateStatus, state: rollback ? "rollback_completed" : "completed", completedAt: tx.now, message },
      });
    }
    const pace = this.pacing.get(s.id);
    if (pace && pace.doneAt === undefined) pace.doneAt = now; // the first look since its batch runs
    const wait = pace ? pace.doneAt! + config.delayMs - now : 0;
    if (wait > 0) {
      this.later(s.id, wait);
      return s;
    }
    this.pacing.set(s.id, {});
    const batch = config.parallelism === 0 ? outdated : outdated.slice(0, config.parallelism);
    for (const old of batch) {
      if (config.order === "stop-first") this.shutdown(tx, old);
      this.createTask(tx, s, old.slot, old.slot === 0 ? old.nodeId : "");
    }
    return s;
  }

  private trimHistory(tx: Tx, s: Service): void {
    const bySlot = new Map<string, Task[]>();
    for (const t of tx.tasksOfService(s.id)) {
      if (isTerminal(t.status.state)) bySlot.set(slotKey(t), [...(bySlot.get(slotKey(t)) ?? []), t]);
    }
    for (const old of bySlot.values()) {
      old.sort((a, b) => (a.updatedAt < b.updatedAt ? 1 : -1));
      for (const t of old.slice(this.historyLimit)) tx.remove("task", t.id);
    }
  }
}
