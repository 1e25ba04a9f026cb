// The manager's state: every object in memory with the indexes the control
// plane needs, persisted through the backend. All changes go through
// `update(fn)`: fn works on a transaction; if it throws, nothing of it stays
// (neither in the database, nor in memory, nor in the allocators, which
// register undo steps); if it returns, its writes are committed at once and
// subscribers see them as one Commit.

import {
  type ClusterReader,
  type Network,
  type Node,
  type ObjectByKind,
  type ObjectKind,
  type Service,
  type Task,
  invalid,
  notFound,
  taskName,
} from "@vipmesh/core";
import { RemovedNodes } from "./removed-nodes.ts";
import { type PersistedState, type Settings, SqliteBackend, type Write } from "./sqlite.ts";

export type AnyObject = ObjectByKind[ObjectKind];

export interface Change {
  action: "create" | "update" | "remove";
  kind: ObjectKind;
  object: AnyObject;
}

export interface Commit {
  version: number;
  changes: Change[];
}

type Maps = { [K in ObjectKind]: Map<string, ObjectByKind[K]> };

const emptyMaps = (): Maps => ({ node: new Map(), network: new Map(), service: new Map(), task: new Map() });

export class ClusterStore implements ClusterReader {
  private readonly maps = emptyMaps();
  private readonly tasksByNode = new Map<string, Set<string>>();
  private readonly tasksByService = new Map<string, Set<string>>();
  private readonly servicesByNetwork = new Map<string, Set<string>>();
  private readonly listeners = new Set<(c: Commit) => void>();
  private current = 0;
  private inTx = false;
  /** Nodes removed from the cluster, refused from then on. */
  readonly removedNodes: RemovedNodes;

  private constructor(
    private readonly persist: ((version: number, writes: Write[]) => void) | null,
    /** Named values beside the objects (see Settings). */
    readonly settings: Settings,
  ) {
    this.removedNodes = new RemovedNodes(settings);
  }

  /** A store on `dataDir` (SQLite), or in memory when `dataDir` is null (unit tests only). */
  static open(dataDir: string | null): { store: ClusterStore; close: () => void } {
    if (dataDir === null) {
      const values = new Map<string, string>();
      return { store: new ClusterStore(null, { get: (k) => values.get(k), set: (k, v) => void values.set(k, v) }), close: () => {} };
    }
    const backend = new SqliteBackend(dataDir);
    const store = new ClusterStore(backend.commit, backend.settings);
    store.loadFrom(backend.load());
    return { store, close: () => backend.close() };
  }

  private loadFrom(state: PersistedState): void {
    this.current = state.version;
    for (const kind of Object.keys(state.objects) as ObjectKind[]) {
      for (const o of state.objects[kind]) this.setObject(kind, o);
    }
  }

  get version(): number {
    return this.current;
  }

  // ---- reading -------------------------------------------------------------

  node = (id: string): Node | undefined => this.maps.node.get(id);
  network = (id: string): Network | undefined => this.maps.network.get(id);
  service = (id: string): Service | undefined => this.maps.service.get(id);
  task = (id: string): Task | undefined => this.maps.task.get(id);

  get<K extends ObjectKind>(kind: K, id: string): ObjectByKind[K] | undefined {
    return this.maps[kind].get(id) as ObjectByKind[K] | undefined;
  }

  list<K extends ObjectKind>(kind: K): ObjectByKind[K][] {
    return [...(this.maps[kind] as Map<string, ObjectByKind[K]>).values()];
  }

  /** Looks up by ID, name or unique ID prefix; NOT_FOUND when nothing matches. */
  mustFind<K extends ObjectKind>(kind: K, ref: string): ObjectByKind[K] {
    return new Tx(this, this.current).mustFind(kind, ref);
  }

  *tasksOfNode(nodeId: string): Iterable<Task> {
    for (const id of this.tasksByNode.get(nodeId) ?? []) yield this.maps.task.get(id)!;
  }

  *tasksOfService(serviceId: string): Iterable<Task> {
    for (const id of this.tasksByService.get(serviceId) ?? []) yield this.maps.task.get(id)!;
  }

  nodes = (): Iterable<Node> => this.maps.node.values();

  ingressNetwork(): Network | undefined {
    for (const n of this.maps.network.values()) if (n.spec.ingress) return n;
    return undefined;
  }

  *servicesOnNetworks(networkIds: ReadonlySet<string>): Iterable<Service> {
    const seen = new Set<string>();
    for (const net of networkIds) {
      for (const id of this.servicesByNetwork.get(net) ?? []) {
        if (!seen.has(id)) {
          seen.add(id);
          yield this.maps.service.get(id)!;
        }
      }
    }
  }

  // ---- writing -------------------------------------------------------------

  subscribe(fn: (c: Commit) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  update<T>(fn: (tx: Tx) => T): T {
    if (this.inTx) throw new Error("nested store.update");
    this.inTx = true;
    const tx = new Tx(this, this.current + 1);
    try {
      const result = fn(tx);
      const changes = tx.changes();
      if (changes.length > 0) {
        const writes: Write[] = changes.map((c) =>
          c.action === "remove"
            ? { op: "delete", kind: c.kind, id: c.object.id }
            : { op: "put", kind: c.kind, object: c.object },
        );
        this.persist?.(tx.version, writes);
        this.current = tx.version;
        for (const c of changes) {
          if (c.action === "remove") this.deleteObject(c.kind, c.object.id);
          else this.setObject(c.kind, c.object);
        }
      }
      this.inTx = false;
      if (changes.length > 0) {
        const commit = { version: this.current, changes };
        for (const l of this.listeners) {
          try {
            l(commit);
          } catch (err) {
            // a subscriber's bug must not turn a committed change into a failed call
            console.error("store subscriber failed:", err);
          }
        }
      }
      return result;
    } catch (err) {
      this.inTx = false;
      tx.rollback();
      throw err;
    }
  }

  private setObject(kind: ObjectKind, o: AnyObject): void {
    if (kind === "service") {
      const old = this.maps.service.get(o.id);
      for (const n of old?.spec.networks ?? []) unindex(this.servicesByNetwork, n.target, o.id);
      for (const n of (o as Service).spec.networks) index(this.servicesByNetwork, n.target).add(o.id);
    }
    if (kind === "task") {
      const t = o as Task;
      const old = this.maps.task.get(t.id);
      if (old && old.nodeId !== t.nodeId) this.tasksByNode.get(old.nodeId)?.delete(t.id);
      if (t.nodeId) index(this.tasksByNode, t.nodeId).add(t.id);
      index(this.tasksByService, t.serviceId).add(t.id);
    }
    (this.maps[kind] as Map<string, AnyObject>).set(o.id, o);
  }

  private deleteObject(kind: ObjectKind, id: string): void {
    if (kind === "service") {
      for (const n of this.maps.service.get(id)?.spec.networks ?? []) unindex(this.servicesByNetwork, n.target, id);
    }
    if (kind === "task") {
      const t = this.maps.task.get(id);
      if (t) {
        unindex(this.tasksByNode, t.nodeId, id);
        unindex(this.tasksByService, t.serviceId, id);
      }
    }
    this.maps[kind].delete(id);
  }
}

function index(m: Map<string, Set<string>>, key: string): Set<string> {
  let s = m.get(key);
  if (!s) m.set(key, (s = new Set()));
  return s;
}

function unindex(m: Map<string, Set<string>>, key: string, id: string): void {
  const s = m.get(key);
  if (!s) return;
  s.delete(id);
  if (s.size === 0) m.delete(key);
}

const NAME_OF: { [K in ObjectKind]: (o: ObjectByKind[K]) => string } = {
  node: (n) => n.description.hostname,
  network: (n) => n.spec.name,
  service: (s) => s.spec.annotations.name,
  task: taskName,
};

/** One transaction: reads see its own writes; writes stay private until commit. */
export class Tx {
  readonly now = new Date().toISOString();
  private readonly writes = new Map<string, Change>();
  private readonly undo: (() => void)[] = [];

  constructor(
    private readonly store: ClusterStore,
    readonly version: number,
  ) {}

  get<K extends ObjectKind>(kind: K, id: string): ObjectByKind[K] | undefined {
    const w = this.writes.get(`${kind}/${id}`);
    if (w) return w.action === "remove" ? undefined : (w.object as ObjectByKind[K]);
    return this.store.get(kind, id);
  }

  list<K extends ObjectKind>(kind: K): ObjectByKind[K][] {
    const out = new Map<string, ObjectByKind[K]>();
    for (const o of this.store.list(kind)) out.set(o.id, o);
    this.overlay(kind, out);
    return [...out.values()];
  }

  /** The routing mesh's network, as this transaction sees it. */
  ingressNetwork(): Network | undefined {
    return this.list("network").find((n) => n.spec.ingress);
  }

  tasksOfService(serviceId: string): Task[] {
    const out = new Map<string, Task>();
    for (const t of this.store.tasksOfService(serviceId)) out.set(t.id, t);
    this.overlay("task", out);
    return [...out.values()].filter((t) => t.serviceId === serviceId);
  }

  tasksOfNode(nodeId: string): Task[] {
    const out = new Map<string, Task>();
    for (const t of this.store.tasksOfNode(nodeId)) out.set(t.id, t);
    this.overlay("task", out);
    return [...out.values()].filter((t) => t.nodeId === nodeId);
  }

  private overlay<K extends ObjectKind>(kind: K, out: Map<string, ObjectByKind[K]>): void {
    for (const w of this.writes.values()) {
      if (w.kind !== kind) continue;
      if (w.action === "remove") out.delete(w.object.id);
      else out.set(w.object.id, w.object as ObjectByKind[K]);
    }
  }

  /** Finds by ID, then by name, then by unique ID prefix. */
  find<K extends ObjectKind>(kind: K, ref: string): ObjectByKind[K] | undefined {
    if (!ref) return undefined;
    const byId = this.get(kind, ref);
    if (byId) return byId;
    const all = this.list(kind);
    const named = all.find((o) => NAME_OF[kind](o) === ref);
    if (named) return named;
    const prefixed = all.filter((o) => o.id.startsWith(ref));
    if (prefixed.length > 1) throw invalid(`${kind} "${ref}" is ambiguous: it is the start of ${prefixed.length} IDs`);
    return prefixed[0];
  }

  /** Like find, but NOT_FOUND with a message when there is none. */
  mustFind<K extends ObjectKind>(kind: K, ref: string): ObjectByKind[K] {
    const o = this.find(kind, ref);
    if (!o) throw notFound(`${kind} "${ref}" not found`);
    return o;
  }

  /** Creates or replaces an object, stamping its version and times. */
  put<K extends ObjectKind>(kind: K, object: ObjectByKind[K]): ObjectByKind[K] {
    const key = `${kind}/${object.id}`;
    const existed = this.writes.get(key)?.action === "create" ? false : this.store.get(kind, object.id) !== undefined;
    const stamped = {
      ...object,
      version: this.version,
      createdAt: object.createdAt || this.now,
      updatedAt: this.now,
    } as ObjectByKind[K];
    this.writes.set(key, { action: existed ? "update" : "create", kind, object: stamped });
    return stamped;
  }

  remove(kind: ObjectKind, id: string): void {
    const key = `${kind}/${id}`;
    const pending = this.writes.get(key);
    if (pending?.action === "create") {
      this.writes.delete(key);
      return;
    }
    const object = pending?.object ?? this.store.get(kind, id);
    if (object) this.writes.set(key, { action: "remove", kind, object });
  }

  /** Registers a step that undoes an in-memory side effect (allocations) if the transaction fails. */
  onRollback(fn: () => void): void {
    this.undo.push(fn);
  }

  changes(): Change[] {
    return [...this.writes.values()];
  }

  rollback(): void {
    for (const fn of this.undo.reverse()) fn();
  }
}
