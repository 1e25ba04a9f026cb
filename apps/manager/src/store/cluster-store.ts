// The manager's state: every object in memory with the indexes the control
// plane needs, persisted through a backend (backend.ts: SQLite or etcd). All
// changes go through `update(fn)`: fn works on a transaction; if it throws,
// nothing of it stays (neither in the backend, nor in memory, nor in the
// allocators, which register undo steps); if it returns, its writes are
// committed and subscribers see them as one Commit. Changes other managers
// commit (etcd) arrive from the backend's watch and reach subscribers the
// same way. A change that lost a race with another manager's runs again on
// the newer state.

import {
  type ClusterReader,
  type Network,
  type Node,
  type ObjectByKind,
  type ObjectKind,
  type Service,
  type Task,
  VipmeshError,
  invalid,
  isTerminal,
  notFound,
  taskName,
} from "@vipmesh/core";
import { type ForeignCommit, type PersistedState, StaleWrite, type StoreBackend, StoreUnavailable, type Write } from "./backend.ts";
import { RemovedNodes } from "./removed-nodes.ts";
import { SqliteBackend } from "./sqlite.ts";

export type AnyObject = ObjectByKind[ObjectKind];

export interface Change {
  action: "create" | "update" | "remove";
  kind: ObjectKind;
  object: AnyObject;
}

export interface Commit {
  version: number;
  changes: Change[];
  /** The names of the settings it set. */
  settings: string[];
  /** Another manager made it (etcd). */
  foreign?: boolean;
}

/** Named values beside the objects (backend.ts's PersistedState.settings): read from memory, written in a commit. */
export interface Settings {
  get(name: string): string | undefined;
  /** One commit of its own; resolves once committed. */
  set(name: string, value: string): Promise<void>;
  /** The setting, made with `make` if the store has none yet, in one transaction: managers starting together agree on one value. */
  init(name: string, make: () => string): Promise<string>;
}

/** A change waiting its turn: how many times it ran, and its caller's promise. */
interface QueuedChange {
  fn: (tx: Tx) => unknown;
  attempt: number;
  resolve: (result: unknown) => void;
  reject: (err: unknown) => void;
}

/** Changes run one over another, committed as one: the transaction holding what they wrote, and each one's own. */
interface Batch {
  tx: Tx;
  done: { change: QueuedChange; tx: Tx; result: unknown }[];
}

type Maps = { [K in ObjectKind]: Map<string, ObjectByKind[K]> };

const emptyMaps = (): Maps => ({ node: new Map(), network: new Map(), service: new Map(), task: new Map() });

/**
 * How often a change that lost a race with another manager runs again before
 * the caller hears UNAVAILABLE. Every commit is ordered by one version key, so
 * three managers busy at once (the leader's orchestrator, the others' agent
 * sessions) beat each other often; each loser waits for the winner's commit,
 * then a random pause that grows with its losses, so they stop meeting.
 */
const MAX_ATTEMPTS = 20;
const retryPause = (attempt: number) => new Promise((r) => setTimeout(r, Math.random() * Math.min(50, 2 ** attempt)));
/** How long a change that lost a race waits for the winner's commit to reach this manager. */
const CATCH_UP_MS = 5000;

export class ClusterStore implements ClusterReader {
  private readonly maps = emptyMaps();
  private readonly tasksByNode = new Map<string, Set<string>>();
  private readonly tasksByService = new Map<string, Set<string>>();
  private readonly servicesByNetwork = new Map<string, Set<string>>();
  /** Per kind, name → IDs (NAME_OF; node hostnames and task names may repeat): finding by name costs no scan. */
  private readonly idsByName: { [K in ObjectKind]: Map<string, Set<string>> } = { node: new Map(), network: new Map(), service: new Map(), task: new Map() };
  private readonly listeners = new Set<(c: Commit) => void>();
  private readonly values = new Map<string, string>();
  private current = 0;
  private inTx = false;
  /** A commit is on its way to the backend: later changes wait in `queue`, run in order. */
  private committing = false;
  private readonly queue: QueuedChange[] = [];
  /** Other managers' commits that came ahead of one still missing (watch order is version order; this is for our own, in flight). */
  private readonly early = new Map<number, ForeignCommit>();
  private readonly caughtUp = new Set<() => void>();
  /** Runs before a change when another manager's commits changed what was allocated (Allocator.restore). */
  private reallocate: (() => void) | undefined;
  private allocationsStale = false;
  /** Nodes removed from the cluster, refused from then on. */
  readonly removedNodes: RemovedNodes;
  readonly settings: Settings = {
    get: (name) => this.values.get(name),
    set: (name, value) => this.update((tx) => tx.setSetting(name, value)),
    init: (name, make) =>
      this.update((tx) => {
        const kept = tx.setting(name);
        if (kept !== undefined) return kept;
        const made = make();
        tx.setSetting(name, made);
        return made;
      }),
  };

  private constructor(private readonly backend: StoreBackend | null) {
    this.removedNodes = new RemovedNodes(this.settings);
  }

  /** A store on `backend`, loaded; in memory only when null (unit tests). Following other managers' commits when the backend has a watch. */
  static async open(backend: StoreBackend | null): Promise<ClusterStore> {
    const store = new ClusterStore(backend);
    if (backend) {
      store.loadFrom(await backend.load());
      store.stopWatch = backend.watch?.(store.current, (c) => store.receive(c), (err) => store.lost(err));
    }
    return store;
  }

  /** The SQLite store of a manager's data dir, or an in-memory one (null: unit tests). */
  static openSqlite(dataDir: string | null): Promise<ClusterStore> {
    return ClusterStore.open(dataDir === null ? null : new SqliteBackend(dataDir));
  }

  private stopWatch: (() => void) | undefined;

  private closed = false;

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reloadTimer);
    this.stopWatch?.();
    await this.backend?.close();
  }

  private loadFrom(state: PersistedState): void {
    this.current = state.version;
    for (const kind of Object.keys(state.objects) as ObjectKind[]) {
      for (const o of state.objects[kind]) this.setObject(kind, o);
    }
    for (const [k, v] of Object.entries(state.settings)) this.values.set(k, v);
  }

  /** Called by the allocator's owner: how to rebuild allocations after other managers' changes. */
  onReallocate(fn: () => void): void {
    this.reallocate = fn;
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
    return [...this.all(kind)];
  }

  /** Every object of a kind, without copying them into an array. */
  all<K extends ObjectKind>(kind: K): Iterable<ObjectByKind[K]> {
    return (this.maps[kind] as Map<string, ObjectByKind[K]>).values();
  }

  /** The objects of a kind with this name (NAME_OF), in the order they were made. */
  *named<K extends ObjectKind>(kind: K, name: string): Iterable<ObjectByKind[K]> {
    for (const id of this.idsByName[kind].get(name) ?? []) yield this.maps[kind].get(id) as ObjectByKind[K];
  }

  setting(name: string): string | undefined {
    return this.values.get(name);
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

  /**
   * Runs fn on a transaction and commits what it wrote. With a synchronous
   * backend (SQLite) all of it happens before update returns, but within
   * together(). Otherwise the changes that come while a commit is on its way
   * wait, then run together, each on the state the ones before it left, and
   * go to the backend as one commit (one version, one Commit for
   * subscribers); a change that throws is undone alone. A lone change waits
   * for nothing. A change another manager's beat is run again (fn must have
   * no effect outside the transaction but through onRollback).
   */
  update<T>(fn: (tx: Tx) => T): Promise<T> {
    if (this.inTx) throw new Error("nested store.update");
    return new Promise<T>((resolve, reject) => this.enqueue({ fn, attempt: 1, resolve: resolve as (v: unknown) => void, reject }));
  }

  /**
   * Runs `body`; the changes it makes (update) run at once, each on the state
   * the ones before it left, but are committed together when it returns: one
   * backend transaction and one Commit for a burst (a write queue's slice, an
   * orchestrator's pass). Reads outside a transaction see them only then.
   */
  together<T>(body: () => T): T {
    this.gatherers++;
    try {
      return body();
    } finally {
      if (--this.gatherers === 0 && this.gathered) {
        const batch = this.gathered;
        this.gathered = undefined;
        this.commitBatch(batch);
      }
    }
  }

  private gatherers = 0;
  private gathered: Batch | undefined;

  private enqueue(change: QueuedChange): void {
    if (this.committing) this.queue.push(change);
    else if (this.gatherers > 0) this.runInto((this.gathered ??= this.openBatch()), change);
    else {
      this.queue.push(change);
      this.drain();
    }
  }

  /** Applies what other managers committed meanwhile, then runs the changes that waited, together, while none is on its way. */
  private drain(): void {
    this.flushEarly();
    while (!this.committing && this.queue.length > 0) {
      const batch = this.openBatch();
      for (const change of this.queue.splice(0)) this.runInto(batch, change);
      this.commitBatch(batch);
    }
  }

  private openBatch(): Batch {
    this.flushEarly();
    if (this.allocationsStale) {
      this.allocationsStale = false;
      this.reallocate?.();
    }
    return { tx: new Tx(this, this.current + 1), done: [] };
  }

  /** Runs a change on a transaction over the batch's changes before it; one that throws is undone and refused alone. */
  private runInto(batch: Batch, change: QueuedChange): void {
    const tx = new Tx(batch.tx, batch.tx.version);
    this.inTx = true;
    try {
      const result = change.fn(tx);
      batch.tx.absorb(tx);
      batch.done.push({ change, tx, result });
    } catch (err) {
      tx.rollback();
      change.reject(storeError(err));
    } finally {
      this.inTx = false;
    }
  }

  /** Commits what the batch's changes wrote as one, and answers their callers. */
  private commitBatch({ tx: batch, done }: Batch): void {
    const undo = () => {
      for (const d of [...done].reverse()) d.tx.rollback();
    };
    const writes = batch.writesToCommit();
    let pending: Promise<void> | void;
    try {
      pending = writes.length > 0 ? this.backend?.commit(batch.version, writes) : undefined;
    } catch (err) {
      undo();
      for (const d of done) d.change.reject(storeError(err));
      return;
    }
    if (!(pending instanceof Promise)) {
      if (writes.length > 0) this.apply(batch.version, batch.changes(), batch.settingWrites(), false);
      for (const d of done) d.change.resolve(d.result);
      return;
    }
    this.committing = true;
    pending.then(
      () => {
        this.committing = false;
        if (this.current < batch.version) this.apply(batch.version, batch.changes(), batch.settingWrites(), false);
        for (const d of done) d.change.resolve(d.result);
        this.drain();
      },
      (err: unknown) => {
        undo();
        this.committing = false;
        this.drain();
        for (const d of done) this.failed(d.change, err);
      },
    );
  }

  /** A change whose commit failed: run again (each on its own, as it would alone) after losing a race, else its caller hears why. */
  private failed(change: QueuedChange, err: unknown): void {
    if (!(err instanceof StaleWrite) || change.attempt >= MAX_ATTEMPTS) {
      change.reject(storeError(err));
      return;
    }
    this.reach(err.seen)
      .then(() => retryPause(change.attempt))
      .then(
        () => this.enqueue({ ...change, attempt: change.attempt + 1 }),
        (e: unknown) => change.reject(storeError(e)),
      );
  }

  /** Resolves once this manager's view reached `version` (another manager's commit, from the watch). */
  private reach(version: number): Promise<void> {
    if (this.current >= version) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (this.current < version) return;
        clearTimeout(timer);
        this.caughtUp.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.caughtUp.delete(check);
        reject(new StoreUnavailable(`this manager's view of the cluster is behind (at version ${this.current}, the store at ${version}): its watch of the store is not delivering`));
      }, CATCH_UP_MS);
      this.caughtUp.add(check);
    });
  }

  /** Another manager's commit, from the backend's watch. */
  private receive(c: ForeignCommit): void {
    if (c.version <= this.current) return; // ours, applied when it was made
    this.early.set(c.version, c);
    this.flushEarly();
  }

  private flushEarly(): void {
    if (this.committing) return; // ours may be the one before: it comes first
    for (const v of [...this.early.keys()].sort((a, b) => a - b)) {
      if (v <= this.current) {
        this.early.delete(v);
        continue;
      }
      if (v !== this.current + 1) break;
      const c = this.early.get(v)!;
      this.early.delete(v);
      this.applyForeign(c);
    }
  }

  private applyForeign(c: ForeignCommit): void {
    const changes: Change[] = [];
    const settings = new Map<string, string>();
    for (const w of c.writes) {
      if (w.op === "setting") settings.set(w.name, w.value);
      else if (w.op === "put") changes.push({ action: this.maps[w.kind].has(w.object.id) ? "update" : "create", kind: w.kind, object: w.object });
      else {
        const old = this.maps[w.kind].get(w.id);
        if (old) changes.push({ action: "remove", kind: w.kind, object: old });
      }
    }
    if (changes.some((ch) => this.changesAllocations(ch))) this.allocationsStale = true;
    this.apply(c.version, changes, settings, true);
  }

  /** Whether another manager's change moved what the allocator holds (addresses, VIPs, ports, VNIs, marks). */
  private changesAllocations(ch: Change): boolean {
    if (ch.kind === "network" || ch.kind === "service") return true;
    if (ch.action !== "update") return ch.kind !== "node" || Boolean((ch.object as Node).status.ingressAddr);
    if (ch.kind === "task") return isEnded(ch.object as Task) !== isEnded(this.maps.task.get(ch.object.id));
    return (ch.object as Node).status.ingressAddr !== this.maps.node.get(ch.object.id)?.status.ingressAddr;
  }

  /**
   * The watch is lost for good (etcd compacted past it): reload, tell
   * subscribers what changed, and watch again; tried again with backoff until
   * it works, this manager's view said to be behind meanwhile (behind()).
   */
  private lost(err: Error): void {
    this.stopWatch?.();
    this.stopWatch = undefined;
    this.unwatched = err.message;
    console.error(`store: ${err.message}; reloading the cluster from the store`);
    const retry = (delayMs: number) =>
      void this.reload().catch((e: unknown) => {
        console.error(`store: reload failed (again in ${delayMs} ms): ${e instanceof Error ? e.message : String(e)}`);
        this.reloadTimer = setTimeout(() => retry(Math.min(delayMs * 2, 10_000)), delayMs);
      });
    retry(500);
  }

  /** Why this manager's view may be behind the store's (its watch was lost and not yet restored); undefined when it follows. */
  behind(): string | undefined {
    return this.unwatched && `its watch of the store was lost (${this.unwatched}) and it is reloading`;
  }

  private unwatched: string | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;

  private async reload(): Promise<void> {
    if (!this.backend || this.closed) return;
    const state = await this.backend.load();
    const writes: Write[] = [];
    for (const kind of Object.keys(state.objects) as ObjectKind[]) {
      const seen = new Set<string>();
      for (const o of state.objects[kind]) {
        seen.add(o.id);
        if (JSON.stringify(this.maps[kind].get(o.id)) !== JSON.stringify(o)) writes.push({ op: "put", kind, object: o });
      }
      for (const id of this.maps[kind].keys()) if (!seen.has(id)) writes.push({ op: "delete", kind, id });
    }
    for (const [name, value] of Object.entries(state.settings)) if (this.values.get(name) !== value) writes.push({ op: "setting", name, value });
    this.early.clear();
    this.current = Math.min(this.current, state.version - 1);
    this.applyForeign({ version: state.version, writes });
    this.allocationsStale = true;
    this.unwatched = undefined;
    this.stopWatch = this.backend.watch?.(state.version, (c) => this.receive(c), (e) => this.lost(e));
  }

  private apply(version: number, changes: Change[], settings: ReadonlyMap<string, string>, foreign: boolean): void {
    this.current = version;
    for (const c of changes) {
      if (c.action === "remove") this.deleteObject(c.kind, c.object.id);
      else this.setObject(c.kind, c.object);
    }
    for (const [name, value] of settings) this.values.set(name, value);
    for (const check of [...this.caughtUp]) check();
    if (changes.length === 0 && settings.size === 0) return;
    const commit: Commit = { version, changes, settings: [...settings.keys()], ...(foreign ? { foreign } : {}) };
    for (const l of this.listeners) {
      try {
        l(commit);
      } catch (err) {
        // a subscriber's bug must not turn a committed change into a failed call
        console.error("store subscriber failed:", err);
      }
    }
  }

  private setObject(kind: ObjectKind, o: AnyObject): void {
    const before = this.maps[kind].get(o.id);
    const name = nameOf(kind, o);
    if (!before) index(this.idsByName[kind], name).add(o.id);
    else if (nameOf(kind, before) !== name) {
      unindex(this.idsByName[kind], nameOf(kind, before), o.id);
      index(this.idsByName[kind], name).add(o.id);
    }
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
    const gone = this.maps[kind].get(id);
    if (gone) unindex(this.idsByName[kind], nameOf(kind, gone), id);
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

const nameOf = (kind: ObjectKind, o: AnyObject): string => (NAME_OF[kind] as (o: AnyObject) => string)(o);

/** What a transaction reads beneath its own writes: the store, or the changes before it in a batch (a Tx). */
type TxBase = Pick<ClusterStore, "get" | "all" | "named" | "tasksOfService" | "tasksOfNode" | "ingressNetwork" | "setting">;

/** One transaction: reads see its own writes; writes stay private until commit. */
export class Tx {
  readonly now = new Date().toISOString();
  private readonly writes = new Map<string, Change>();
  /** What the writes touched, for reads that would otherwise scan them all: IDs per kind, per name, tasks per service and node. */
  private readonly written: { [K in ObjectKind]: Set<string> } = { node: new Set(), network: new Set(), service: new Set(), task: new Set() };
  private readonly writtenNames = new Map<string, Set<string>>();
  private readonly writtenTasksByService = new Map<string, Set<string>>();
  private readonly writtenTasksByNode = new Map<string, Set<string>>();
  private readonly settings = new Map<string, string>();
  private readonly undo: (() => void)[] = [];

  constructor(
    private readonly base: TxBase,
    readonly version: number,
  ) {}

  get<K extends ObjectKind>(kind: K, id: string): ObjectByKind[K] | undefined {
    const w = this.writes.get(`${kind}/${id}`);
    if (w) return w.action === "remove" ? undefined : (w.object as ObjectByKind[K]);
    return this.base.get(kind, id);
  }

  /** `o` (read beneath) as this transaction sees it: its own write of it, or undefined when it removed it. */
  private seen<K extends ObjectKind>(kind: K, o: ObjectByKind[K]): ObjectByKind[K] | undefined {
    const w = this.writes.get(`${kind}/${o.id}`);
    if (!w) return o;
    return w.action === "remove" ? undefined : (w.object as ObjectByKind[K]);
  }

  /** Every object of a kind as this transaction sees it, without copying them. */
  *all<K extends ObjectKind>(kind: K): Iterable<ObjectByKind[K]> {
    for (const o of this.base.all(kind)) {
      const mine = this.seen(kind, o);
      if (mine) yield mine;
    }
    for (const id of this.written[kind]) {
      const w = this.writes.get(`${kind}/${id}`);
      if (w?.action === "create") yield w.object as ObjectByKind[K];
    }
  }

  list<K extends ObjectKind>(kind: K): ObjectByKind[K][] {
    return [...this.all(kind)];
  }

  /** The objects of a kind with this name, as this transaction sees them. */
  *named<K extends ObjectKind>(kind: K, name: string): Iterable<ObjectByKind[K]> {
    const found = new Set<string>();
    for (const o of this.base.named(kind, name)) {
      found.add(o.id);
      const mine = this.seen(kind, o);
      if (mine && nameOf(kind, mine) === name) yield mine;
    }
    for (const id of this.writtenNames.get(`${kind}/${name}`) ?? []) {
      const o = found.has(id) ? undefined : this.get(kind, id);
      if (o && nameOf(kind, o) === name) yield o;
    }
  }

  /** The routing mesh's network, as this transaction sees it. */
  ingressNetwork(): Network | undefined {
    for (const id of this.written.network) {
      const n = this.get("network", id);
      if (n?.spec.ingress) return n;
    }
    const stored = this.base.ingressNetwork();
    const mine = stored && this.seen("network", stored);
    return mine?.spec.ingress ? mine : undefined;
  }

  tasksOfService(serviceId: string): Task[] {
    return this.tasksWhere(this.base.tasksOfService(serviceId), this.writtenTasksByService.get(serviceId), (t) => t.serviceId === serviceId);
  }

  tasksOfNode(nodeId: string): Task[] {
    return this.tasksWhere(this.base.tasksOfNode(nodeId), this.writtenTasksByNode.get(nodeId), (t) => t.nodeId === nodeId);
  }

  /** The tasks beneath, as this transaction sees them, then those it wrote into the set; each once, if it still matches. */
  private tasksWhere(beneath: Iterable<Task>, written: ReadonlySet<string> | undefined, match: (t: Task) => boolean): Task[] {
    const out: Task[] = [];
    const found = new Set<string>();
    for (const t of beneath) {
      found.add(t.id);
      const mine = this.seen("task", t);
      if (mine && match(mine)) out.push(mine);
    }
    for (const id of written ?? []) {
      const t = found.has(id) ? undefined : this.get("task", id);
      if (t && match(t)) out.push(t);
    }
    return out;
  }

  /** Finds by ID, then by name, then by unique ID prefix (a scan, only when the ref is neither). */
  find<K extends ObjectKind>(kind: K, ref: string): ObjectByKind[K] | undefined {
    if (!ref) return undefined;
    const byId = this.get(kind, ref);
    if (byId) return byId;
    for (const named of this.named(kind, ref)) return named;
    const prefixed: ObjectByKind[K][] = [];
    for (const o of this.all(kind)) if (o.id.startsWith(ref)) prefixed.push(o);
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
    const existed = this.writes.get(key)?.action === "create" ? false : this.base.get(kind, object.id) !== undefined;
    const stamped = {
      ...object,
      version: this.version,
      createdAt: object.createdAt || this.now,
      updatedAt: this.now,
    } as ObjectByKind[K];
    this.record(key, { action: existed ? "update" : "create", kind, object: stamped });
    return stamped;
  }

  remove(kind: ObjectKind, id: string): void {
    const key = `${kind}/${id}`;
    const pending = this.writes.get(key);
    if (pending?.action === "create") {
      this.writes.delete(key);
      return;
    }
    const object = pending?.object ?? this.base.get(kind, id);
    if (object) this.record(key, { action: "remove", kind, object });
  }

  /** Takes in the writes of `tx`, made on this one: this one then holds what both wrote, as one transaction would. */
  absorb(tx: Tx): void {
    for (const [key, c] of tx.writes) {
      const mine = this.writes.get(key);
      if (!mine) this.record(key, c);
      else if (c.action !== "remove") this.record(key, { ...c, action: mine.action === "create" ? "create" : "update" });
      else if (mine.action === "create") this.writes.delete(key);
      else this.record(key, c);
    }
    for (const [name, value] of tx.settings) this.settings.set(name, value);
  }

  private record(key: string, c: Change): void {
    this.writes.set(key, c);
    const id = c.object.id;
    this.written[c.kind].add(id);
    if (c.action === "remove") return;
    index(this.writtenNames, `${c.kind}/${nameOf(c.kind, c.object)}`).add(id);
    if (c.kind === "task") {
      const t = c.object as Task;
      index(this.writtenTasksByService, t.serviceId).add(id);
      if (t.nodeId) index(this.writtenTasksByNode, t.nodeId).add(id);
    }
  }

  /** Registers a step that undoes an in-memory side effect (allocations) if the transaction fails. */
  onRollback(fn: () => void): void {
    this.undo.push(fn);
  }

  /** Sets a named value (see Settings) as part of this transaction. */
  setSetting(name: string, value: string): void {
    this.settings.set(name, value);
  }

  /** A setting as this transaction sees it. */
  setting(name: string): string | undefined {
    return this.settings.get(name) ?? this.base.setting(name);
  }

  changes(): Change[] {
    return [...this.writes.values()];
  }

  settingWrites(): ReadonlyMap<string, string> {
    return this.settings;
  }

  /** What the backend writes: the objects, then the settings. */
  writesToCommit(): Write[] {
    const out: Write[] = this.changes().map((c) =>
      c.action === "remove" ? { op: "delete", kind: c.kind, id: c.object.id } : { op: "put", kind: c.kind, object: c.object },
    );
    for (const [name, value] of this.settings) out.push({ op: "setting", name, value });
    return out;
  }

  rollback(): void {
    for (const fn of this.undo.reverse()) fn();
  }
}

const isEnded = (t: Task | undefined): boolean => t !== undefined && isTerminal(t.status.state);

/** What a caller hears when the store cannot take a change: UNAVAILABLE with the backend's reason. */
function storeError(err: unknown): unknown {
  if (err instanceof StoreUnavailable) return new VipmeshError("unavailable", err.message);
  if (err instanceof StaleWrite) {
    return new VipmeshError("unavailable", `the cluster kept changing under this call (other managers wrote first ${MAX_ATTEMPTS} times); retry it`);
  }
  return err;
}
