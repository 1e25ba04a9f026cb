// Every session's network view, held as what the views share. Per network one
// slice — the network, the services on it alone, the endpoints on it — that
// every node holding the network sees alike; a service on several networks
// (every published one) as one entry per subset of them, shared by the nodes
// holding that subset; per node only what is its own: its tasks, which ingress
// sandboxes it sees, its peers. A change is applied once and every node that
// sees it gets the same delta object, which the sender encodes once: a change
// costs in proportion to itself and to the nodes that see it, not to the size
// of their views.
// What an agent builds from these updates equals computeNetworkView (the
// seeded property test in shared-views.test.ts).

import {
  type ClusterReader,
  type DirtySet,
  ingressSandboxEndpoint,
  isNodeTask,
  nodeNetworkIds,
  type SandboxScope,
  sandboxScope,
  taskEndpoints,
  viewNetwork,
  viewService,
} from "./network-view-derivation.ts";
import { emptyDelta, ingressSandboxKey, isEmptyDelta, sameViewEntry, type ViewDelta, type ViewEndpoint, type ViewNetwork, type ViewService } from "./network-view.ts";
import type { Service, Task } from "./types.ts";

/** What one node gets for a change: its own part, and parts other nodes get too (the same objects: encode each once). */
export interface NodeUpdate {
  nodeId: string;
  own: ViewDelta;
  shared: ViewDelta[];
}

/** One network as every node holding it sees it. */
interface Slice {
  id: string;
  network: ViewNetwork | undefined;
  /** Services attached to this network alone. */
  services: Map<string, ViewService>;
  endpoints: Map<string, ViewEndpoint>;
  /** How many of the endpoints each node hosts. */
  peerRefs: Map<string, number>;
  /** Nodes whose view holds the network. */
  holders: Set<string>;
  /** Per service: the epoch of the last change to it or to an endpoint of it here. */
  changedAt: Map<string, number>;
  /** The slice's content as one delta, while it does not change (what a node joining it gets). */
  full: ViewDelta | undefined;
  /** This refresh: what changed, what is new, and the nodes whose endpoint count came to or left zero. */
  delta: ViewDelta;
  created: Set<string>;
  hadNetwork: boolean;
  peerFlips: Set<string>;
  /** This refresh: removes what the slice held before it (what a node leaving it gets). */
  leave: ViewDelta | undefined;
}

/** What one node's view holds beyond the slices of its networks. */
interface NodeView {
  nets: Set<string>;
  tasks: Map<string, Task>;
  sandboxes: SandboxScope;
  /** Peer → the address it was sent with. */
  peers: Map<string, string>;
  /** Network → the epoch the node joined it. */
  joinedAt: Map<string, number>;
  /** Service → the epoch one of its tasks here last changed. */
  ownAt: Map<string, number>;
}

const sameEndpoint = (a: ViewEndpoint, b: ViewEndpoint): boolean =>
  a.key === b.key &&
  a.taskId === b.taskId &&
  a.serviceId === b.serviceId &&
  a.networkId === b.networkId &&
  a.addr === b.addr &&
  a.mac === b.mac &&
  a.nodeId === b.nodeId &&
  a.nodeAddr === b.nodeAddr &&
  a.ready === b.ready &&
  a.weight === b.weight;

/** Writes one entry (or removes it, for undefined) and records the change; false when nothing changed. */
function put<T>(map: Map<string, T>, key: string, value: T | undefined, upserts: T[], removed: string[], equal: (a: T, b: T) => boolean): boolean {
  const old = map.get(key);
  if (value === undefined) {
    if (old === undefined) return false;
    map.delete(key);
    removed.push(key);
    return true;
  }
  if (old !== undefined && (old === value || equal(old, value))) return false;
  map.set(key, value);
  upserts.push(value);
  return true;
}

/** Every write of a task is a new version: equal content is compared only when the version is the same. */
const sameTask = (a: Task, b: Task) => a === b || (a.version === b.version && sameViewEntry(a, b));

function bump(m: Map<string, number>, key: string, by: number): { was: number; is: number } {
  const was = m.get(key) ?? 0;
  const is = was + by;
  if (is > 0) m.set(key, is);
  else m.delete(key);
  return { was, is };
}

export class SharedViews {
  private readonly slices = new Map<string, Slice>();
  private readonly views = new Map<string, NodeView>();
  /** Where each single-network service sits, and the networks of each service on several. */
  private readonly placed = new Map<string, string>();
  private readonly multiNets = new Map<string, string[]>();
  private readonly multiOnNetwork = new Map<string, Set<string>>();
  /**
   * A service on several networks as the nodes holding each subset of them see it (one object per subset,
   * shared by those nodes), and the epoch it last changed. This refresh: how they were before, and the parts it sends.
   */
  private readonly multiViews = new Map<string, Map<string, ViewService>>();
  private readonly multiChangedAt = new Map<string, number>();
  private multiBefore = new Map<string, { nets: string[]; views: Map<string, ViewService> }>();
  private multiParts = new Map<ViewService | string, ViewDelta>();
  /** The epoch of the refresh (or open) under way. */
  private epoch = 0;
  /** Each task's endpoints (shared by every slice entry), and which tasks of a service have any. */
  private readonly endpointsOfTask = new Map<string, ViewEndpoint[]>();
  private readonly tasksWithEndpoints = new Map<string, Set<string>>();
  /** Which nodes' views hold each task (to find the node a task moved away from). */
  private readonly taskHolders = new Map<string, Set<string>>();
  /** Every ready node's ingress sandbox, with this refresh's changes. */
  private readonly sandboxes = new Map<string, ViewEndpoint>();
  private sandboxDelta = emptyDelta();
  /** This refresh: each changed sandbox as it was before (the delta is non-empty iff this is). */
  private sandboxBefore = new Map<string, ViewEndpoint | undefined>();
  private sandboxFull: ViewDelta | undefined;
  private readonly everySandbox = new Set<string>();
  /** Slices changed by this refresh (a slice's delta is non-empty iff it is here). */
  private touched = new Set<Slice>();

  constructor(private readonly r: ClusterReader) {}

  /** Builds the slices from the whole cluster (once, before any view opens). */
  load(services: Iterable<Service>, tasks: Iterable<Task>, networkIds: Iterable<string>): void {
    const dirty: DirtySet = { nodes: new Set(), networks: new Set(networkIds), services: new Set([...services].map((s) => s.id)), tasks: new Set([...tasks].map((t) => t.id)) };
    this.refresh(dirty, 0);
  }

  // ---- views -----------------------------------------------------------------

  /** A node's whole view, as a delta from nothing (all of it is `full`). */
  open(nodeId: string, epoch: number): NodeUpdate {
    this.close(nodeId);
    const v: NodeView = { nets: new Set(), tasks: new Map(), sandboxes: "none", peers: new Map(), joinedAt: new Map(), ownAt: new Map() };
    this.views.set(nodeId, v);
    this.epoch = epoch;
    const tasks = [...this.r.tasksOfNode(nodeId)].map((t) => t.id);
    return this.refreshView(nodeId, v, tasks, new Set(), new Set(), true, epoch);
  }

  close(nodeId: string): void {
    const v = this.views.get(nodeId);
    if (!v) return;
    for (const n of v.nets) {
      const s = this.slices.get(n);
      s?.holders.delete(nodeId);
      if (s && !this.touched.has(s)) this.dropIfEmpty(s);
    }
    for (const id of v.tasks.keys()) unindex(this.taskHolders, id, nodeId);
    this.everySandbox.delete(nodeId);
    this.views.delete(nodeId);
  }

  /** The nodes whose view holds any of these networks. */
  holders(networkIds: Iterable<string>): Set<string> {
    const out = new Set<string>();
    for (const n of networkIds) for (const h of this.slices.get(n)?.holders ?? []) out.add(h);
    return out;
  }

  /** Whether the node's view holds an encrypted network. */
  holdsEncrypted(nodeId: string): boolean {
    for (const n of this.views.get(nodeId)?.nets ?? []) if (this.slices.get(n)?.network?.encrypted) return true;
    return false;
  }

  /** The nodes that see a service, each with the epoch of the last change to what it sees of it. */
  watchers(serviceId: string): Map<string, number> {
    const out = new Map<string, number>();
    const at = (nodeId: string, epoch: number) => out.set(nodeId, Math.max(out.get(nodeId) ?? 0, epoch));
    const svc = this.r.service(serviceId);
    for (const a of svc?.spec.networks ?? []) {
      const s = this.slices.get(a.target);
      if (!s) continue;
      for (const h of s.holders) {
        const v = this.views.get(h)!;
        at(h, Math.max(s.changedAt.get(serviceId) ?? 0, this.multiChangedAt.get(serviceId) ?? 0, v.joinedAt.get(s.id) ?? 0, v.ownAt.get(serviceId) ?? 0));
      }
    }
    for (const t of this.r.tasksOfService(serviceId)) {
      const v = this.views.get(t.nodeId);
      if (v?.tasks.has(t.id)) at(t.nodeId, v.ownAt.get(serviceId) ?? 0);
    }
    return out;
  }

  // ---- a change --------------------------------------------------------------

  /**
   * Brings every slice and view up to date after the objects in `dirty`
   * changed, and returns what each node whose view changed must get.
   */
  refresh(dirty: DirtySet, epoch: number): NodeUpdate[] {
    const r = this.r;
    this.epoch = epoch;
    for (const id of dirty.networks) {
      const n = r.network(id);
      const s = n ? this.slice(id) : this.slices.get(id);
      const next = n ? viewNetwork(n) : undefined;
      if (!s || (s.network ?? next) === undefined || (s.network && next && sameViewEntry(s.network, next))) continue;
      if (next) s.delta.networks.push(next);
      else s.delta.removedNetworks.push(id);
      s.hadNetwork = s.network !== undefined;
      s.network = next;
      this.touch(s);
    }

    const endpointTasks = new Set(dirty.tasks);
    /** Services on several networks that changed, with the networks they were and are on. */
    const multiChanged = new Map<string, Set<string>>();
    for (const id of dirty.services) {
      const svc = r.service(id);
      const nets = [...new Set(svc?.spec.networks.map((a) => a.target) ?? [])];
      const single = nets.length === 1 ? nets[0] : undefined;
      const before = this.placed.get(id);
      if (before !== undefined && before !== single) this.setService(this.slices.get(before)!, id, undefined, epoch);
      if (single !== undefined) this.setService(this.slice(single), id, viewService(svc!, new Set(nets)), epoch);
      const oldMulti = this.multiNets.get(id) ?? [];
      if (nets.length > 1 || oldMulti.length > 0) {
        multiChanged.set(id, new Set([...oldMulti, ...(nets.length > 1 ? nets : [])]));
        this.multiBefore.set(id, { nets: oldMulti, views: this.multiViews.get(id) ?? new Map() });
        this.multiViews.delete(id);
      }
      for (const n of oldMulti) unindex(this.multiOnNetwork, n, id);
      if (nets.length > 1) {
        this.multiNets.set(id, nets);
        for (const n of nets) index(this.multiOnNetwork, n).add(id);
      } else this.multiNets.delete(id);
      for (const t of r.tasksOfService(id)) endpointTasks.add(t.id);
      for (const t of this.tasksWithEndpoints.get(id) ?? []) endpointTasks.add(t);
    }
    for (const id of dirty.nodes) for (const t of r.tasksOfNode(id)) endpointTasks.add(t.id);
    for (const id of endpointTasks) this.setTaskEndpoints(id, epoch);

    // ingress sandboxes: those of changed nodes; all of them when a network changed (the ingress network may have come or gone)
    const sandboxNodes = new Set(dirty.nodes);
    if (dirty.networks.size > 0) {
      for (const n of r.nodes()) sandboxNodes.add(n.id);
      for (const id of this.sandboxes.keys()) sandboxNodes.add(id);
    }
    for (const id of sandboxNodes) this.setSandbox(id, ingressSandboxEndpoint(r, id));

    // the views: of nodes holding a changed slice, running (or having run) a changed task, or that may see a changed node
    const tasksByNode = new Map<string, string[]>();
    for (const id of dirty.tasks) {
      const t = r.task(id);
      for (const n of new Set([t?.nodeId, ...(this.taskHolders.get(id) ?? [])])) {
        if (!n || !this.views.has(n)) continue;
        const list = tasksByNode.get(n);
        if (list) list.push(id);
        else tasksByNode.set(n, [id]);
      }
    }
    const affected = new Set<string>(tasksByNode.keys());
    for (const s of this.touched) for (const h of s.holders) affected.add(h);
    for (const nets of multiChanged.values()) for (const h of this.holders(nets)) affected.add(h);
    if (this.sandboxBefore.size > 0) for (const h of this.everySandbox) affected.add(h);
    for (const id of this.sandboxBefore.keys()) if (this.views.has(id)) affected.add(id);
    if (dirty.networks.size > 0) for (const id of this.views.keys()) affected.add(id);
    if (dirty.nodes.size > 0) {
      const changed = [...dirty.nodes];
      for (const [id, v] of this.views) if (changed.some((n) => n === id || v.peers.has(n))) affected.add(id);
    }

    const updates: NodeUpdate[] = [];
    const multi = new Set(multiChanged.keys());
    for (const id of affected) {
      const itself = tasksByNode.has(id) || dirty.nodes.has(id) || dirty.networks.size > 0;
      const u = this.refreshView(id, this.views.get(id)!, tasksByNode.get(id) ?? [], multi, dirty.nodes, itself, epoch);
      if (!isEmptyDelta(u.own) || u.shared.length > 0) updates.push(u);
    }
    this.endRefresh();
    return updates;
  }

  /**
   * One node's view after a change: `tasks` its changed tasks, `multi` the changed services on several networks,
   * `nodes` the changed nodes; `itself` whether what decides its networks may have changed (its tasks, its node,
   * a network). Most nodes only hold a changed slice: for them this is a few lookups.
   */
  private refreshView(nodeId: string, v: NodeView, tasks: readonly string[], multi: ReadonlySet<string>, nodes: ReadonlySet<string>, itself: boolean, epoch: number): NodeUpdate {
    const r = this.r;
    const own = emptyDelta();
    const shared: ViewDelta[] = [];
    for (const id of tasks) {
      const t = r.task(id);
      const old = v.tasks.get(id);
      if (!put(v.tasks, id, t && isNodeTask(t, nodeId) ? t : undefined, own.tasks, own.removedTasks, sameTask)) continue;
      if (v.tasks.has(id)) index(this.taskHolders, id).add(nodeId);
      else unindex(this.taskHolders, id, nodeId);
      for (const sid of [old?.serviceId, t?.serviceId]) if (sid) this.changedOwn(v, sid, epoch);
    }
    const peerCandidates = new Set<string>(nodes);

    // networks joined get the slice whole, networks left take away what it held, the others get what changed
    const before = v.nets;
    const nets = itself ? nodeNetworkIds(r, nodeId) : v.nets;
    const moved: string[] = [];
    for (const n of v.nets) {
      const s = this.slices.get(n)!;
      if (!nets.has(n)) {
        moved.push(n);
        const leave = this.leaveOf(s);
        if (!isEmptyDelta(leave)) shared.push(leave);
        s.holders.delete(nodeId);
        if (!this.touched.has(s)) this.dropIfEmpty(s);
        v.joinedAt.delete(n);
        for (const p of s.peerRefs.keys()) peerCandidates.add(p);
      } else if (this.touched.has(s)) shared.push(s.delta);
      for (const p of s.peerFlips) peerCandidates.add(p);
    }
    if (nets !== v.nets) {
      for (const n of nets) {
        if (v.nets.has(n)) continue;
        moved.push(n);
        const s = this.slice(n);
        s.holders.add(nodeId);
        v.joinedAt.set(n, epoch);
        const full = this.fullOf(s);
        if (!isEmptyDelta(full)) shared.push(full);
        for (const p of s.peerRefs.keys()) peerCandidates.add(p);
      }
      v.nets = nets;
    }

    // services on several networks: those that changed, and all on a network joined or left; each entry is the one every node holding the same of its networks shares
    const multiIds = new Set(multi);
    for (const n of moved) for (const id of this.multiOnNetwork.get(n) ?? []) multiIds.add(id);
    for (const id of multiIds) {
      const was = this.multiView(id, before, true);
      const is = this.multiView(id, nets, false);
      if (is !== was && !(is && was && sameViewEntry(is, was))) shared.push(this.multiPart(id, is));
    }

    // ingress sandboxes: every node's changes where it sees them all, else its own, else entry by entry where that changed
    const scope = itself ? sandboxScope(r, nets, v.tasks.values()) : v.sandboxes;
    if (scope === "all" && v.sandboxes === "all") {
      if (this.sandboxBefore.size > 0) shared.push(this.sandboxDelta);
      for (const id of this.sandboxBefore.keys()) peerCandidates.add(id);
    } else if (scope === "all" && v.sandboxes === "none") {
      shared.push(this.sandboxFullDelta());
      for (const id of this.sandboxes.keys()) peerCandidates.add(id);
    } else if (scope !== v.sandboxes || (scope === "own" && this.sandboxBefore.has(nodeId))) {
      const before = this.sandboxesSeen(nodeId, v.sandboxes, true);
      const after = this.sandboxesSeen(nodeId, scope, false);
      for (const [id, e] of after) if (before.get(id) !== e) own.endpoints.push(e);
      for (const [id, e] of before) if (!after.has(id)) own.removedEndpoints.push(e.key);
      for (const id of [...before.keys(), ...after.keys()]) peerCandidates.add(id);
    }
    v.sandboxes = scope;
    if (scope === "all") this.everySandbox.add(nodeId);
    else this.everySandbox.delete(nodeId);

    // peers: the other nodes that host an endpoint of the view
    peerCandidates.delete(nodeId);
    for (const p of peerCandidates) {
      const addr = this.isPeer(v, p) ? r.node(p)?.status.addr || undefined : undefined;
      if (addr === v.peers.get(p)) continue;
      if (addr === undefined) {
        v.peers.delete(p);
        own.removedPeers.push(p);
      } else {
        v.peers.set(p, addr);
        own.peers.push({ nodeId: p, addr });
      }
    }
    return { nodeId, own, shared };
  }

  /**
   * A service on several networks as a node holding `nets` sees it (none if it holds none of them), as it is
   * or as it was before this refresh. Equal entries stay the same object, so nodes are sent only what changed.
   */
  private multiView(id: string, nets: ReadonlySet<string>, before: boolean): ViewService | undefined {
    const old = this.multiBefore.get(id);
    const on = before && old ? old.nets : (this.multiNets.get(id) ?? []);
    const held = on.filter((n) => nets.has(n));
    if (held.length === 0) return undefined;
    const key = held.join(" ");
    if (before && old) return old.views.get(key);
    const svc = this.r.service(id);
    if (!svc) return undefined;
    let views = this.multiViews.get(id);
    if (!views) this.multiViews.set(id, (views = new Map()));
    let view = views.get(key);
    if (!view) {
      const fresh = viewService(svc, new Set(held))!;
      const was = old?.views.get(key);
      view = was && sameViewEntry(was, fresh) ? was : fresh;
      if (view !== was) this.multiChangedAt.set(id, this.epoch);
      views.set(key, view);
    }
    return view;
  }

  /** The part that puts `view` in a node's view, or takes the service out: one object a refresh, for every node that gets it. */
  private multiPart(id: string, view: ViewService | undefined): ViewDelta {
    let part = this.multiParts.get(view ?? id);
    if (!part) this.multiParts.set(view ?? id, (part = view ? { ...emptyDelta(), services: [view] } : { ...emptyDelta(), removedServices: [id] }));
    return part;
  }

  /** A service's tasks changed in this node's own part: remembered while the service lives and the node runs one. */
  private changedOwn(v: NodeView, serviceId: string, epoch: number): void {
    const seen = [...v.tasks.values()].some((t) => t.serviceId === serviceId);
    if (seen && this.r.service(serviceId)) v.ownAt.set(serviceId, epoch);
    else v.ownAt.delete(serviceId);
  }

  private isPeer(v: NodeView, nodeId: string): boolean {
    if (v.sandboxes === "all" && this.sandboxes.has(nodeId)) return true;
    for (const n of v.nets) if (this.slices.get(n)?.peerRefs.has(nodeId)) return true;
    return false;
  }

  /** The ingress sandboxes a node sees in a scope, as they are (or as they were before this refresh). */
  private sandboxesSeen(nodeId: string, scope: SandboxScope, before: boolean): Map<string, ViewEndpoint> {
    const out = new Map<string, ViewEndpoint>();
    const of = (id: string) => (before && this.sandboxBefore.has(id) ? this.sandboxBefore.get(id) : this.sandboxes.get(id));
    const ids = scope === "all" ? new Set([...this.sandboxes.keys(), ...(before ? this.sandboxBefore.keys() : [])]) : scope === "own" ? [nodeId] : [];
    for (const id of ids) {
      const e = of(id);
      if (e) out.set(id, e);
    }
    return out;
  }

  // ---- slices ----------------------------------------------------------------

  private slice(id: string): Slice {
    let s = this.slices.get(id);
    if (!s) {
      s = {
        id,
        network: undefined,
        services: new Map(),
        endpoints: new Map(),
        peerRefs: new Map(),
        holders: new Set(),
        changedAt: new Map(),
        full: undefined,
        delta: emptyDelta(),
        created: new Set(),
        hadNetwork: false,
        peerFlips: new Set(),
        leave: undefined,
      };
      this.slices.set(id, s);
    }
    return s;
  }

  private touch(s: Slice): void {
    s.full = undefined;
    this.touched.add(s);
  }

  private setService(s: Slice, id: string, value: ViewService | undefined, epoch: number): void {
    const existed = s.services.has(id);
    if (!put(s.services, id, value, s.delta.services, s.delta.removedServices, sameViewEntry)) return;
    if (!existed) s.created.add(id);
    if (value) this.placed.set(id, s.id);
    else if (this.placed.get(id) === s.id) this.placed.delete(id);
    s.changedAt.set(id, epoch);
    if (!value) s.changedAt.delete(id);
    this.touch(s);
  }

  private setTaskEndpoints(taskId: string, epoch: number): void {
    const t = this.r.task(taskId);
    const wanted = t ? taskEndpoints(t, this.r) : [];
    const had = this.endpointsOfTask.get(taskId) ?? [];
    for (const e of had) if (!wanted.some((w) => w.key === e.key)) this.setEndpoint(this.slices.get(e.networkId)!, e.key, undefined, epoch);
    for (const e of wanted) this.setEndpoint(this.slice(e.networkId), e.key, e, epoch);
    const serviceId = t?.serviceId ?? had[0]?.serviceId;
    if (wanted.length > 0) {
      this.endpointsOfTask.set(taskId, wanted);
      index(this.tasksWithEndpoints, serviceId!).add(taskId);
    } else if (had.length > 0) {
      this.endpointsOfTask.delete(taskId);
      unindex(this.tasksWithEndpoints, had[0]!.serviceId, taskId);
    }
  }

  private setEndpoint(s: Slice, key: string, e: ViewEndpoint | undefined, epoch: number): void {
    const old = s.endpoints.get(key);
    if (!put(s.endpoints, key, e, s.delta.endpoints, s.delta.removedEndpoints, sameEndpoint)) return;
    if (!old) s.created.add(key);
    for (const [x, by] of [[old, -1], [e, 1]] as const) {
      if (!x) continue;
      const { was, is } = bump(s.peerRefs, x.nodeId, by);
      if ((was === 0) !== (is === 0)) s.peerFlips.add(x.nodeId);
      if (this.r.service(x.serviceId)) s.changedAt.set(x.serviceId, epoch);
      else s.changedAt.delete(x.serviceId);
    }
    this.touch(s);
  }

  private setSandbox(nodeId: string, e: ViewEndpoint | undefined): void {
    const old = this.sandboxes.get(nodeId);
    if (!put(this.sandboxes, nodeId, e, this.sandboxDelta.endpoints, this.sandboxDelta.removedEndpoints, sameEndpoint)) return;
    // the delta is keyed by endpoint key; removals name the key, not the node
    if (!e) this.sandboxDelta.removedEndpoints[this.sandboxDelta.removedEndpoints.length - 1] = ingressSandboxKey(nodeId);
    if (!this.sandboxBefore.has(nodeId)) this.sandboxBefore.set(nodeId, old);
    this.sandboxFull = undefined;
  }

  private sandboxFullDelta(): ViewDelta {
    if (!this.sandboxFull) this.sandboxFull = { ...emptyDelta(), endpoints: [...this.sandboxes.values()] };
    return this.sandboxFull;
  }

  /** The slice's content as a delta from nothing (cached until it changes). */
  private fullOf(s: Slice): ViewDelta {
    if (!s.full) s.full = { ...emptyDelta(), networks: s.network ? [s.network] : [], services: [...s.services.values()], endpoints: [...s.endpoints.values()] };
    return s.full;
  }

  /** What removes everything the slice held before this refresh. */
  private leaveOf(s: Slice): ViewDelta {
    if (!s.leave) {
      const before = (keys: Iterable<string>, removed: string[]) => [...[...keys].filter((k) => !s.created.has(k)), ...removed];
      const changedNetwork = s.delta.networks.length + s.delta.removedNetworks.length > 0;
      s.leave = {
        ...emptyDelta(),
        removedNetworks: (changedNetwork ? s.hadNetwork : s.network !== undefined) ? [s.id] : [],
        removedServices: before(s.services.keys(), s.delta.removedServices),
        removedEndpoints: before(s.endpoints.keys(), s.delta.removedEndpoints),
      };
    }
    return s.leave;
  }

  private dropIfEmpty(s: Slice): void {
    if (!s.network && s.services.size === 0 && s.endpoints.size === 0 && s.holders.size === 0) this.slices.delete(s.id);
  }

  /** Forgets this refresh's deltas, and slices nothing refers to any more. */
  private endRefresh(): void {
    for (const s of this.touched) {
      s.delta = emptyDelta();
      s.created = new Set();
      s.peerFlips = new Set();
      s.leave = undefined;
      this.dropIfEmpty(s);
    }
    this.touched = new Set();
    for (const id of this.multiBefore.keys()) {
      if (this.multiNets.has(id)) continue;
      this.multiViews.delete(id);
      this.multiChangedAt.delete(id);
    }
    this.multiBefore = new Map();
    this.multiParts = new Map();
    this.sandboxDelta = emptyDelta();
    this.sandboxBefore = new Map();
  }
}

function index(m: Map<string, Set<string>>, key: string): Set<string> {
  let v = m.get(key);
  if (v === undefined) m.set(key, (v = new Set()));
  return v;
}

function unindex(m: Map<string, Set<string>>, key: string, id: string): void {
  const s = m.get(key);
  if (!s) return;
  s.delete(id);
  if (s.size === 0) m.delete(key);
}
