// Placement: which node gets a task. A node may take it when it is ready and
// active, has the task's runtime (process or container), meets its
// constraints, has room for its reservations and its host-mode ports free.
// Among those, spread as swarm does: the fewest tasks of this service, then
// the fewest tasks overall, then by hostname so that placement is repeatable.

import { matchesConstraints } from "./constraints.ts";
import { isNodeTask } from "./network-view-derivation.ts";
import { taskRuntime } from "./task-command.ts";
import { isTerminal, type Node, type PortConfig, type Resources, type Task, type TaskRuntime, type TaskSpec } from "./types.ts";
import { formatBytes } from "./validation.ts";

/** The runtimes a node has: what its agent said, or "process" alone for a node stored before agents said. */
export const nodeRuntimes = (n: Node): readonly TaskRuntime[] => (n.description.runtimes?.length ? n.description.runtimes : ["process"]);

const hasRuntime = (n: Node, spec: TaskSpec): boolean => nodeRuntimes(n).includes(taskRuntime(spec.container));

const isUsable = (n: Node): boolean => n.status.state === "ready" && n.spec.availability === "active";

/** Nodes that may receive new tasks of this spec (a global service's too): usable, with its runtime, meeting its constraints. */
export function eligibleNodes(nodes: Iterable<Node>, spec: TaskSpec): Node[] {
  const out: Node[] = [];
  for (const n of nodes) {
    if (!isUsable(n) || !hasRuntime(n, spec)) continue;
    if (!matchesConstraints(n, spec.placement.constraints)) continue;
    out.push(n);
  }
  return out;
}

// ---- reservations ----------------------------------------------------------

/** CPUs and memory, both said (0 = none). */
export type Amounts = Required<Resources>;

/** What a task of this spec reserves. */
export const taskReservations = (spec: TaskSpec): Amounts => ({
  nanoCpus: spec.resources?.reservations?.nanoCpus ?? 0,
  memoryBytes: spec.resources?.reservations?.memoryBytes ?? 0,
});

/** A placed task meant to run holds its reservations (a task told to stop gives its share back, as in swarm). */
const holdsReservations = (t: Task): boolean => t.desiredState === "running" && isNodeTask(t, t.nodeId);

/** What the placed tasks that are meant to run reserve, per node ID. */
export function reservedResources(tasks: Iterable<Task>): Map<string, Amounts> {
  const out = new Map<string, Amounts>();
  for (const t of tasks) if (holdsReservations(t)) reserve(out, t.nodeId, t.spec);
  return out;
}

/** Records a placed task's reservations. */
export function reserve(reserved: Map<string, Amounts>, nodeId: string, spec: TaskSpec): void {
  const want = taskReservations(spec);
  if (want.nanoCpus === 0 && want.memoryBytes === 0) return;
  const had = reserved.get(nodeId) ?? { nanoCpus: 0, memoryBytes: 0 };
  reserved.set(nodeId, { nanoCpus: had.nanoCpus + want.nanoCpus, memoryBytes: had.memoryBytes + want.memoryBytes });
}

/** Gives back what reserve recorded for a task. */
function unreserve(reserved: Map<string, Amounts>, nodeId: string, spec: TaskSpec): void {
  const want = taskReservations(spec);
  const had = reserved.get(nodeId);
  if (!had || (want.nanoCpus === 0 && want.memoryBytes === 0)) return;
  const left = { nanoCpus: had.nanoCpus - want.nanoCpus, memoryBytes: had.memoryBytes - want.memoryBytes };
  if (left.nanoCpus === 0 && left.memoryBytes === 0) reserved.delete(nodeId);
  else reserved.set(nodeId, left);
}

/** A task a node counts for spreading (PlacementLoad.allTasks): meant to run, not ended, placed on it or meant for it (global). */
const spreadsOn = (t: Task): boolean => t.nodeId !== "" && t.desiredState === "running" && !isTerminal(t.status.state);

/**
 * What placement counts on per node, kept as tasks change instead of counted
 * again from every task for each placement: the tasks that spread, and the
 * reservations held. Each task counts once, as it was last set.
 */
export class NodeLoad {
  /** Per node ID, its tasks meant to run and not ended. */
  readonly tasks = new Map<string, number>();
  /** Per node ID, what its placed tasks meant to run reserve (as reservedResources). */
  readonly reserved = new Map<string, Amounts>();
  private readonly counted = new Map<string, Task>();

  constructor(tasks: Iterable<Task> = []) {
    for (const t of tasks) this.set(t.id, t);
  }

  /** The task as it is counted now; undefined when it is not. */
  countedAs(id: string): Task | undefined {
    return this.counted.get(id);
  }

  /** Counts task `id` as `t` from now on, in place of what it was counted as; undefined: it is gone. */
  set(id: string, t: Task | undefined): void {
    const was = this.counted.get(id);
    if (was === t) return;
    if (was) {
      if (spreadsOn(was)) this.tasks.set(was.nodeId, this.tasks.get(was.nodeId)! - 1);
      if (holdsReservations(was)) unreserve(this.reserved, was.nodeId, was.spec);
    }
    if (!t) {
      this.counted.delete(id);
      return;
    }
    this.counted.set(id, t);
    if (spreadsOn(t)) this.tasks.set(t.nodeId, (this.tasks.get(t.nodeId) ?? 0) + 1);
    if (holdsReservations(t)) reserve(this.reserved, t.nodeId, t.spec);
  }
}

const RESOURCE_NAMES = { memoryBytes: "memory", nanoCpus: "CPU" } as const;
const showAmount = (field: keyof Amounts, n: number): string => (field === "memoryBytes" ? formatBytes(n) : `${n / 1e9} CPUs`);

/** Why a node has no room for a task's reservations; undefined: it has. Memory is judged first. */
interface ResourceMisfit {
  field: keyof Amounts;
  /** The node did not say how much of it it offers. */
  unsaid: boolean;
  want: number;
  free: number;
  reserved: number;
  offered: number;
}

function resourceMisfit(n: Node, want: Amounts, reserved: ReadonlyMap<string, Amounts>): ResourceMisfit | undefined {
  for (const field of ["memoryBytes", "nanoCpus"] as const) {
    if (want[field] === 0) continue;
    const offered = n.description.resources?.[field] ?? 0;
    const used = reserved.get(n.id)?.[field] ?? 0;
    if (offered - used < want[field]) return { field, unsaid: offered === 0, want: want[field], free: Math.max(0, offered - used), reserved: used, offered };
  }
  return undefined;
}

/** Of `candidates`, those with room for the spec's reservations beside what is reserved on them; a node that did not say its resources takes only tasks reserving none. */
export const withResourcesFree = (candidates: readonly Node[], spec: TaskSpec, reserved: ReadonlyMap<string, Amounts>): readonly Node[] => {
  const want = taskReservations(spec);
  if (want.nanoCpus === 0 && want.memoryBytes === 0) return candidates; // every node has room for nothing
  return candidates.filter((n) => !resourceMisfit(n, want, reserved));
};

// ---- choosing ----------------------------------------------------------------

/** "tcp/8080": one host-mode port of a node. */
const hostPortKey = (p: PortConfig) => `${p.protocol}/${p.publishedPort}`;

/** The host-mode ports that placed, unfinished tasks hold, per node ID (a task told to stop holds its own until it has). */
export function hostPortsInUse(tasks: Iterable<Task>): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const t of tasks) {
    if (t.hostPorts?.length && isNodeTask(t, t.nodeId)) useHostPorts(out, t.nodeId, t.hostPorts);
  }
  return out;
}

/** Of `candidates`, those where none of `ports` is in use: a host-mode port opens once per node (as swarm). */
export const withHostPortsFree = (candidates: readonly Node[], ports: readonly PortConfig[], inUse: ReadonlyMap<string, ReadonlySet<string>>): readonly Node[] =>
  ports.length === 0 ? candidates : candidates.filter((n) => !ports.some((p) => inUse.get(n.id)?.has(hostPortKey(p))));

/** Records a placed task's host-mode ports. */
export function useHostPorts(inUse: Map<string, Set<string>>, nodeId: string, ports: readonly PortConfig[]): void {
  const used = inUse.get(nodeId) ?? new Set<string>();
  for (const p of ports) used.add(hostPortKey(p));
  inUse.set(nodeId, used);
}

export interface PlacementLoad {
  /** Running-or-starting tasks of the service being placed, per node ID. */
  serviceTasks: Map<string, number>;
  /** All such tasks, per node ID. */
  allTasks: Map<string, number>;
}

/** Nodes in the order placement breaks ties in: by hostname. */
export const byHostname = (nodes: readonly Node[]): Node[] => [...nodes].sort((a, b) => a.description.hostname.localeCompare(b.description.hostname));

/** Where a task goes: the node with the fewest of the service's tasks, then the fewest tasks; ties to the lowest hostname. */
export function pickNode(candidates: readonly Node[], load: PlacementLoad): Node | undefined {
  return pickNodeInOrder(byHostname(candidates), load);
}

/**
 * pickNode for candidates already in byHostname order (the orchestrator sorts
 * each pass's eligible nodes once): the first of the least loaded, numbers
 * only — a pick looks at every candidate, and comparing names was most of it.
 */
export function pickNodeInOrder(candidates: readonly Node[], load: PlacementLoad): Node | undefined {
  let best: Node | undefined;
  let bestService = 0;
  let bestAll = 0;
  for (const n of candidates) {
    const service = load.serviceTasks.get(n.id) ?? 0;
    const all = load.allTasks.get(n.id) ?? 0;
    if (best && (service > bestService || (service === bestService && all >= bestAll))) continue;
    best = n;
    bestService = service;
    bestAll = all;
  }
  return best;
}

const nodes_ = (count: number): string => `${count} node${count === 1 ? "" : "s"}`;

/**
 * Why no node fits, for a pending task's message (as swarm: `service ps`
 * shows it). Each ready, active node counts under the first thing it lacks:
 * the task's runtime, its constraints, room for its reservations (when
 * `reserved` is given: the resources were checked).
 */
export function noNodeReason(nodes: readonly Node[], spec?: TaskSpec, reserved?: ReadonlyMap<string, Amounts>): string {
  const ready = nodes.filter((n) => n.status.state === "ready");
  if (nodes.length === 0) return "no suitable node (no node has joined the cluster)";
  if (ready.length === 0) return `no suitable node (0 of ${nodes.length} nodes ready)`;
  const active = ready.filter((n) => n.spec.availability === "active");
  if (active.length === 0) return `no suitable node (all ${ready.length} ready nodes are drained)`;
  if (!spec) return `no suitable node (scheduling constraints not satisfied on ${nodes_(active.length)})`;
  const runtime = taskRuntime(spec.container);
  const want = taskReservations(spec);
  let noRuntime = 0;
  let constrained = 0;
  const misfits: ResourceMisfit[] = [];
  for (const n of active) {
    if (!hasRuntime(n, spec)) noRuntime++;
    else if (!matchesConstraints(n, spec.placement.constraints)) constrained++;
    else if (reserved) {
      const m = resourceMisfit(n, want, reserved);
      if (m) misfits.push(m);
    }
  }
  const parts: string[] = [];
  if (noRuntime > 0) parts.push(`${nodes_(noRuntime)} ${noRuntime === 1 ? "lacks" : "lack"} the ${runtime} runtime`);
  if (constrained > 0) parts.push(`scheduling constraints not satisfied on ${nodes_(constrained)}`);
  parts.push(...resourceReasons(misfits));
  if (parts.length === 0) return `no suitable node (scheduling constraints not satisfied on ${nodes_(active.length)})`;
  return `no suitable node (${parts.join(", ")})`;
}

/** "1 node has not enough memory for 768 MiB: 512 MiB reserved of 1 GiB", grouped by resource. */
function resourceReasons(misfits: readonly ResourceMisfit[]): string[] {
  const out: string[] = [];
  for (const field of ["memoryBytes", "nanoCpus"] as const) {
    const name = RESOURCE_NAMES[field];
    const unsaid = misfits.filter((m) => m.field === field && m.unsaid);
    const short = misfits.filter((m) => m.field === field && !m.unsaid);
    if (unsaid.length > 0) out.push(`${nodes_(unsaid.length)} ${unsaid.length === 1 ? "does not say its" : "do not say their"} ${name} to reserve from`);
    if (short.length === 0) continue;
    const want = showAmount(field, short[0]!.want);
    if (short.length === 1) {
      const m = short[0]!;
      out.push(`1 node has not enough ${name} for ${want}: ${showAmount(field, m.reserved)} reserved of ${showAmount(field, m.offered)}`);
    } else {
      out.push(`${nodes_(short.length)} have not enough ${name} for ${want}: at most ${showAmount(field, Math.max(...short.map((m) => m.free)))} free`);
    }
  }
  return out;
}

/** Why a task that fits `fitting` nodes otherwise has none: its host-mode ports are taken on each. */
export const hostPortReason = (ports: readonly PortConfig[], fitting: number): string =>
  `no suitable node (host-mode port${ports.length > 1 ? "s" : ""} ${ports.map((p) => `${p.publishedPort}/${p.protocol}`).join(", ")} already in use on ` +
  `${fitting === 1 ? "the 1 node" : `all ${fitting} nodes`} the task may run on)`;
