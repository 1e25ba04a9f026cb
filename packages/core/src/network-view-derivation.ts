// A node's network view derived from cluster state: whole (computeNetworkView,
// for a new session) or refreshed in place after commits (refreshNetworkView),
// at a cost that follows what changed rather than the size of the view.

import { macForIpv4 } from "./ipv4.ts";
import {
  emptyDelta,
  emptyView,
  ingressSandboxKey,
  type NetworkView,
  sameViewEntry,
  type ViewDelta,
  type ViewEndpoint,
  type ViewNetwork,
  type ViewService,
} from "./network-view.ts";
import { isTaskReady } from "./task-readiness.ts";
import type { Network, Node, Service, Task } from "./types.ts";
import { isTerminal } from "./types.ts";

/** Read access to cluster state with the indexes the view needs. */
export interface ClusterReader {
  node(id: string): Node | undefined;
  network(id: string): Network | undefined;
  service(id: string): Service | undefined;
  task(id: string): Task | undefined;
  tasksOfNode(nodeId: string): Iterable<Task>;
  tasksOfService(serviceId: string): Iterable<Task>;
  /** Services attached to any of these networks. */
  servicesOnNetworks(networkIds: ReadonlySet<string>): Iterable<Service>;
  nodes(): Iterable<Node>;
  /** The routing mesh's network, if the cluster has one. */
  ingressNetwork(): Network | undefined;
}

export interface DirtySet {
  nodes: ReadonlySet<string>;
  networks: ReadonlySet<string>;
  services: ReadonlySet<string>;
  tasks: ReadonlySet<string>;
}

/** Tasks the node must run or stop: assigned to it (not merely meant for it) and not yet terminal. */
export const isNodeTask = (t: Task, nodeId: string): boolean =>
  t.nodeId === nodeId && t.status.state !== "new" && t.status.state !== "pending" && !isTerminal(t.status.state);

/**
 * A task that should be reachable on the overlay (FDB/neighbour entries) while
 * it starts, runs, and drains: a task told to stop keeps its entries until its
 * process has stopped, so the connections it still serves keep their path
 * (new ones no longer come: it is not ready).
 */
const isEndpointTask = (t: Task, r: ClusterReader): boolean =>
  (t.status.state === "assigned" || t.status.state === "preparing" || t.status.state === "starting" || t.status.state === "running") &&
  r.node(t.nodeId)?.status.state === "ready";

/**
 * The networks a node's view holds: those of its tasks and, once the node has
 * an ingress sandbox address, the ingress network — every node carries the
 * routing mesh, whether or not it runs a task of a published service.
 */
export function nodeNetworkIds(r: ClusterReader, nodeId: string): Set<string> {
  const ids = new Set<string>();
  const ingress = r.ingressNetwork();
  if (ingress && r.node(nodeId)?.status.ingressAddr) ids.add(ingress.id);
  for (const t of r.tasksOfNode(nodeId)) {
    if (isNodeTask(t, nodeId)) for (const a of t.networks) ids.add(a.networkId);
  }
  return ids;
}

function viewNetwork(n: Network): ViewNetwork {
  return {
    id: n.id,
    name: n.spec.name,
    subnet: n.ipam.subnet,
    gateway: n.ipam.gateway,
    vni: n.vni,
    encrypted: n.encrypted,
    ingress: n.spec.ingress,
  };
}

function viewService(s: Service, nets: ReadonlySet<string>): ViewService | undefined {
  const vips = s.endpoint.virtualIps.filter((v) => nets.has(v.networkId));
  const attached = s.spec.networks.some((n) => nets.has(n.target));
  if (!attached) return undefined;
  const aliases = s.spec.networks.flatMap((n) => (nets.has(n.target) && n.aliases?.length ? [{ networkId: n.target, names: n.aliases }] : []));
  return {
    id: s.id,
    name: s.spec.annotations.name,
    endpointMode: s.spec.endpointSpec.mode,
    ports: s.endpoint.ports,
    virtualIps: vips,
    lbScheduler: s.spec.endpointSpec.lbScheduler,
    ...(s.spec.endpointSpec.lbAffinity === "client-ip" ? { lbAffinity: "client-ip", lbAffinityTimeoutS: s.spec.endpointSpec.lbAffinityTimeoutS } : {}),
    ...(aliases.length > 0 ? { aliases } : {}),
  };
}

function taskEndpoints(t: Task, r: ClusterReader, nets: ReadonlySet<string>): ViewEndpoint[] {
  const service = r.service(t.serviceId);
  if (!isEndpointTask(t, r) || !service) return [];
  const weight = service.spec.endpointSpec.lbWeights[String(t.slot)] ?? 1;
  const nodeAddr = r.node(t.nodeId)!.status.addr;
  const out: ViewEndpoint[] = [];
  for (const a of t.networks) {
    const addr = a.addresses[0];
    if (!nets.has(a.networkId) || !addr) continue;
    out.push({
      key: `${t.id}/${a.networkId}`,
      taskId: t.id,
      serviceId: t.serviceId,
      networkId: a.networkId,
      addr,
      mac: macForIpv4(addr),
      nodeId: t.nodeId,
      nodeAddr,
      ready: isTaskReady(t),
      weight,
    });
  }
  return out;
}

/**
 * Which ingress sandboxes a node's view holds: none off the ingress network;
 * its own; and, once it runs a task on the ingress network, every ready
 * node's — the tasks answer the ingress sandbox that forwarded to them, over
 * the overlay. A node without such a task needs no other node's: the mesh
 * costs a node in proportion to the nodes only where published tasks run.
 */
interface IngressScope {
  ingressId: string | undefined;
  everyNode: boolean;
}

function ingressScope(r: ClusterReader, nodeId: string, nets: ReadonlySet<string>): IngressScope {
  const ingress = r.ingressNetwork();
  if (!ingress || !nets.has(ingress.id)) return { ingressId: undefined, everyNode: false };
  for (const t of r.tasksOfNode(nodeId)) {
    if (isNodeTask(t, nodeId) && t.networks.some((a) => a.networkId === ingress.id)) return { ingressId: ingress.id, everyNode: true };
  }
  return { ingressId: ingress.id, everyNode: false };
}

/**
 * A ready node's ingress sandbox, as an endpoint of the ingress network: of
 * no service (no task, no load balancing, no DNS), but on the overlay, since
 * the tasks it forwards published traffic to answer its address.
 */
function ingressSandboxEndpoint(r: ClusterReader, id: string, nodeId: string, scope: IngressScope): ViewEndpoint | undefined {
  const n = r.node(id);
  const addr = n?.status.ingressAddr;
  if (!scope.ingressId || (id !== nodeId && !scope.everyNode)) return undefined;
  if (!n || !addr || n.status.state !== "ready") return undefined;
  const ingressId = scope.ingressId;
  return {
    key: ingressSandboxKey(n.id),
    taskId: "",
    serviceId: "",
    networkId: ingressId,
    addr,
    mac: macForIpv4(addr),
    nodeId: n.id,
    nodeAddr: n.status.addr,
    ready: true,
    weight: 1,
  };
}

/** The whole view of one node, from scratch. */
export function computeNetworkView(r: ClusterReader, nodeId: string): NetworkView {
  const view = emptyView();
  const nets = nodeNetworkIds(r, nodeId);
  for (const t of r.tasksOfNode(nodeId)) if (isNodeTask(t, nodeId)) view.tasks.set(t.id, t);
  const serviceIds = new Set<string>();
  for (const id of nets) {
    const n = r.network(id);
    if (n) view.networks.set(id, viewNetwork(n));
  }
  for (const s of r.servicesOnNetworks(nets)) {
    const vs = viewService(s, nets);
    if (!vs) continue;
    view.services.set(s.id, vs);
    serviceIds.add(s.id);
  }
  for (const sid of serviceIds) {
    for (const t of r.tasksOfService(sid)) for (const e of taskEndpoints(t, r, nets)) view.endpoints.set(e.key, e);
  }
  const scope = ingressScope(r, nodeId, nets);
  for (const id of scope.everyNode ? [...r.nodes()].map((n) => n.id) : [nodeId]) {
    const e = ingressSandboxEndpoint(r, id, nodeId, scope);
    if (e) view.endpoints.set(e.key, e);
  }
  for (const e of view.endpoints.values()) {
    if (e.nodeId !== nodeId) view.peers.set(e.nodeId, { nodeId: e.nodeId, addr: e.nodeAddr });
  }
  return view;
}

/**
 * What refreshNetworkView keeps beside a view so that a refresh costs in
 * proportion to what changed, not to the size of the view: the networks the
 * view was built for (those of the tasks it holds — view.networks lacks any
 * whose object is gone), each task's endpoint keys, and how many endpoints
 * each peer hosts. Built on first use from the view itself.
 */
interface ViewIndex {
  nets: Set<string>;
  /** The view holds every node's ingress sandbox, not only its own (ingressScope); unknown for an index built from a view. */
  everyIngressSandbox: boolean | undefined;
  endpointsByTask: Map<string, Set<string>>;
  peerRefs: Map<string, number>;
}

const indexes = new WeakMap<NetworkView, ViewIndex>();

function indexOf(view: NetworkView): ViewIndex {
  let idx = indexes.get(view);
  if (!idx) {
    idx = { nets: new Set(), everyIngressSandbox: undefined, endpointsByTask: new Map(), peerRefs: new Map() };
    for (const t of view.tasks.values()) for (const a of t.networks) idx.nets.add(a.networkId);
    for (const n of view.networks.values()) if (n.ingress) idx.nets.add(n.id); // held for the node's ingress sandbox, tasks or not
    for (const e of view.endpoints.values()) {
      let keys = idx.endpointsByTask.get(e.taskId);
      if (!keys) idx.endpointsByTask.set(e.taskId, (keys = new Set()));
      keys.add(e.key);
      idx.peerRefs.set(e.nodeId, (idx.peerRefs.get(e.nodeId) ?? 0) + 1);
    }
    indexes.set(view, idx);
  }
  return idx;
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

/** Writes one view entry (or removes it, for undefined) and records the change in the delta. */
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

/**
 * Brings `view` up to date after the objects in `dirty` changed, touching only
 * what they can affect, and returns the delta (empty when nothing the node sees
 * changed).
 */
export function refreshNetworkView(
  r: ClusterReader,
  nodeId: string,
  view: NetworkView,
  dirty: DirtySet,
): ViewDelta {
  const idx = indexOf(view);
  const d = emptyDelta();
  const nets = nodeNetworkIds(r, nodeId);
  const networks = new Set(dirty.networks);
  const services = new Set(dirty.services);
  const endpointTasks = new Set(dirty.tasks);

  // networks the node joined or left bring in, or take away, their services and endpoints
  const joined = [...nets].filter((id) => !idx.nets.has(id));
  const left = [...idx.nets].filter((id) => !nets.has(id));
  if (joined.length > 0 || left.length > 0) {
    for (const id of [...joined, ...left]) networks.add(id);
    for (const svc of r.servicesOnNetworks(new Set(joined))) services.add(svc.id);
    // tasks keep the attachments they were made with, so a service already in view may
    // have tasks on a joined network that its current spec no longer lists
    if (joined.length > 0) for (const id of view.services.keys()) for (const t of r.tasksOfService(id)) endpointTasks.add(t.id);
    if (left.length > 0) {
      const gone = new Set(left);
      for (const e of view.endpoints.values()) if (gone.has(e.networkId)) endpointTasks.add(e.taskId);
      for (const id of view.services.keys()) {
        const svc = r.service(id);
        if (!svc || svc.spec.networks.some((n) => gone.has(n.target))) services.add(id);
      }
    }
    idx.nets = nets;
  }

  for (const id of dirty.tasks) {
    const t = r.task(id);
    put(view.tasks, id, t && isNodeTask(t, nodeId) ? t : undefined, d.tasks, d.removedTasks, sameViewEntry);
  }
  for (const id of networks) {
    const n = r.network(id);
    put(view.networks, id, n && nets.has(id) ? viewNetwork(n) : undefined, d.networks, d.removedNetworks, sameViewEntry);
  }
  for (const id of dirty.nodes) for (const t of r.tasksOfNode(id)) endpointTasks.add(t.id);
  // ingress sandboxes: those of dirty nodes; all of them when a network changed (the ingress one may
  // have come or gone) or the node began or ceased to run a task on the ingress network
  const scope = ingressScope(r, nodeId, nets);
  const sandboxNodes = new Set(dirty.nodes);
  if (networks.size > 0 || scope.everyNode !== idx.everyIngressSandbox) {
    idx.everyIngressSandbox = scope.everyNode;
    for (const n of r.nodes()) sandboxNodes.add(n.id);
    for (const key of idx.endpointsByTask.get("") ?? []) sandboxNodes.add(view.endpoints.get(key)!.nodeId);
  }
  for (const id of services) {
    const svc = r.service(id);
    put(view.services, id, svc ? viewService(svc, nets) : undefined, d.services, d.removedServices, sameViewEntry);
    for (const t of r.tasksOfService(id)) endpointTasks.add(t.id);
    if (!svc) for (const e of view.endpoints.values()) if (e.serviceId === id) endpointTasks.add(e.taskId);
  }

  const touchedPeers = new Set<string>(dirty.nodes);
  const setEndpoint = (key: string, e: ViewEndpoint | undefined) => {
    const old = view.endpoints.get(key);
    if (!put(view.endpoints, key, e, d.endpoints, d.removedEndpoints, sameEndpoint)) return;
    if (old) {
      idx.peerRefs.set(old.nodeId, (idx.peerRefs.get(old.nodeId) ?? 1) - 1);
      idx.endpointsByTask.get(old.taskId)?.delete(key);
      touchedPeers.add(old.nodeId);
    }
    if (e) {
      idx.peerRefs.set(e.nodeId, (idx.peerRefs.get(e.nodeId) ?? 0) + 1);
      let keys = idx.endpointsByTask.get(e.taskId);
      if (!keys) idx.endpointsByTask.set(e.taskId, (keys = new Set()));
      keys.add(key);
      touchedPeers.add(e.nodeId);
    }
  };

  for (const id of sandboxNodes) setEndpoint(ingressSandboxKey(id), ingressSandboxEndpoint(r, id, nodeId, scope));

  // endpoints of each touched task: what it should have vs. what the view has
  for (const taskId of endpointTasks) {
    const t = r.task(taskId);
    const wanted = t && view.services.has(t.serviceId) ? taskEndpoints(t, r, nets) : [];
    const had = idx.endpointsByTask.get(taskId);
    if (had) {
      for (const key of [...had]) if (!wanted.some((e) => e.key === key)) setEndpoint(key, undefined);
      if (had.size === 0) idx.endpointsByTask.delete(taskId);
    }
    for (const e of wanted) setEndpoint(e.key, e);
  }

  // a node is a peer while it hosts an endpoint of the view
  for (const id of touchedPeers) {
    if (id === nodeId) continue;
    const refs = idx.peerRefs.get(id) ?? 0;
    if (refs <= 0) idx.peerRefs.delete(id);
    const addr = r.node(id)?.status.addr;
    put(view.peers, id, refs > 0 && addr ? { nodeId: id, addr } : undefined, d.peers, d.removedPeers, sameViewEntry);
  }
  return d;
}
