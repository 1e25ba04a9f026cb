// The per-node network view: what one node's agent needs to know of the
// cluster — its own tasks, the networks they attach to, every service on
// those networks with its VIPs, every endpoint (task address + node) on them,
// and the peer nodes that host those endpoints. The manager keeps one view per
// agent session and sends what changed; the agent applies the same deltas.

import { macForIpv4 } from "./ipv4.ts";
import type { Network, Node, PortConfig, Service, Task, VirtualIp } from "./types.ts";
import { isTerminal } from "./types.ts";

export interface ViewNetwork {
  id: string;
  name: string;
  subnet: string;
  gateway: string;
  vni: number;
  encrypted: boolean;
  ingress: boolean;
}

export interface ViewService {
  id: string;
  name: string;
  endpointMode: string;
  ports: PortConfig[];
  virtualIps: VirtualIp[];
}

export interface ViewEndpoint {
  key: string;
  taskId: string;
  serviceId: string;
  networkId: string;
  addr: string;
  mac: string;
  nodeId: string;
  nodeAddr: string;
  /** Running and not unhealthy: may receive traffic. */
  ready: boolean;
}

export interface ViewPeer {
  nodeId: string;
  addr: string;
}

export interface NetworkView {
  tasks: Map<string, Task>;
  networks: Map<string, ViewNetwork>;
  services: Map<string, ViewService>;
  endpoints: Map<string, ViewEndpoint>;
  peers: Map<string, ViewPeer>;
}

/** A change to a view, as sent in an Assignment (version and `full` are added by the sender). */
export interface ViewDelta {
  tasks: Task[];
  removedTasks: string[];
  networks: ViewNetwork[];
  removedNetworks: string[];
  services: ViewService[];
  removedServices: string[];
  endpoints: ViewEndpoint[];
  removedEndpoints: string[];
  peers: ViewPeer[];
  removedPeers: string[];
}

/** Read access to cluster state with the two indexes the view needs. */
export interface ClusterReader {
  node(id: string): Node | undefined;
  network(id: string): Network | undefined;
  service(id: string): Service | undefined;
  task(id: string): Task | undefined;
  tasksOfNode(nodeId: string): Iterable<Task>;
  tasksOfService(serviceId: string): Iterable<Task>;
}

export interface DirtySet {
  nodes: ReadonlySet<string>;
  networks: ReadonlySet<string>;
  services: ReadonlySet<string>;
  tasks: ReadonlySet<string>;
}

export const emptyView = (): NetworkView => ({
  tasks: new Map(),
  networks: new Map(),
  services: new Map(),
  endpoints: new Map(),
  peers: new Map(),
});

export const emptyDelta = (): ViewDelta => ({
  tasks: [],
  removedTasks: [],
  networks: [],
  removedNetworks: [],
  services: [],
  removedServices: [],
  endpoints: [],
  removedEndpoints: [],
  peers: [],
  removedPeers: [],
});

export const isEmptyDelta = (d: ViewDelta): boolean => Object.values(d).every((list) => list.length === 0);

/**
 * Why an agent must not attach a task to this network, if it must not. An
 * encrypted overlay is refused until overlay encryption exists: the task
 * fails with this reason rather than sending plaintext on a network its user
 * asked to be encrypted (swarm's CVE-2023-28840 class of bug).
 */
export function attachmentRefusal(n: ViewNetwork): string | undefined {
  if (n.encrypted) {
    return `network ${n.name} is encrypted and this agent cannot encrypt overlay traffic yet; refusing to attach rather than send plaintext`;
  }
  return undefined;
}

/** Tasks the node must run or stop: assigned to it (not merely meant for it) and not yet terminal. */
export const isNodeTask = (t: Task, nodeId: string): boolean =>
  t.nodeId === nodeId && t.status.state !== "new" && t.status.state !== "pending" && !isTerminal(t.status.state);

/** A task that should be reachable on the overlay (FDB/neighbour entries) while it starts and runs. */
const isEndpointTask = (t: Task, r: ClusterReader): boolean =>
  t.desiredState === "running" &&
  (t.status.state === "assigned" || t.status.state === "starting" || t.status.state === "running") &&
  r.node(t.nodeId)?.status.state === "ready";

const isReady = (t: Task): boolean =>
  t.status.state === "running" && (t.status.health === "" || t.status.health === "healthy");

export function nodeNetworkIds(r: ClusterReader, nodeId: string): Set<string> {
  const ids = new Set<string>();
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
  return {
    id: s.id,
    name: s.spec.annotations.name,
    endpointMode: s.spec.endpointSpec.mode,
    ports: s.endpoint.ports,
    virtualIps: vips,
  };
}

function taskEndpoints(t: Task, r: ClusterReader, nets: ReadonlySet<string>): ViewEndpoint[] {
  if (!isEndpointTask(t, r) || !r.service(t.serviceId)) return [];
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
      ready: isReady(t),
    });
  }
  return out;
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
  // services on the node's networks: found through the tasks of those networks'
  // services is not possible without an index, so the caller's reader lists them
  for (const s of servicesOnNetworks(r, nets)) {
    const vs = viewService(s, nets);
    if (!vs) continue;
    view.services.set(s.id, vs);
    serviceIds.add(s.id);
  }
  for (const sid of serviceIds) {
    for (const t of r.tasksOfService(sid)) for (const e of taskEndpoints(t, r, nets)) view.endpoints.set(e.key, e);
  }
  for (const e of view.endpoints.values()) {
    if (e.nodeId !== nodeId) view.peers.set(e.nodeId, { nodeId: e.nodeId, addr: e.nodeAddr });
  }
  return view;
}

/** Optional capability of a reader: list services attached to any of the networks. */
export interface ServiceLister {
  servicesOnNetworks(networkIds: ReadonlySet<string>): Iterable<Service>;
}

function servicesOnNetworks(r: ClusterReader, nets: ReadonlySet<string>): Iterable<Service> {
  return (r as ClusterReader & Partial<ServiceLister>).servicesOnNetworks?.(nets) ?? [];
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** What turns `prev` into `next`. */
export function diffNetworkViews(prev: NetworkView, next: NetworkView): ViewDelta {
  const d = emptyDelta();
  diffMap(prev.tasks, next.tasks, d.tasks, d.removedTasks);
  diffMap(prev.networks, next.networks, d.networks, d.removedNetworks);
  diffMap(prev.services, next.services, d.services, d.removedServices);
  diffMap(prev.endpoints, next.endpoints, d.endpoints, d.removedEndpoints);
  diffMap(prev.peers, next.peers, d.peers, d.removedPeers);
  return d;
}

function diffMap<T>(prev: Map<string, T>, next: Map<string, T>, upserts: T[], removed: string[]): void {
  for (const [k, v] of next) if (!prev.has(k) || !same(prev.get(k), v)) upserts.push(v);
  for (const k of prev.keys()) if (!next.has(k)) removed.push(k);
}

/** Applies a delta in place (what an agent does with each Assignment). */
export function applyViewDelta(view: NetworkView, d: ViewDelta): void {
  for (const k of d.removedTasks) view.tasks.delete(k);
  for (const t of d.tasks) view.tasks.set(t.id, t);
  for (const k of d.removedNetworks) view.networks.delete(k);
  for (const n of d.networks) view.networks.set(n.id, n);
  for (const k of d.removedServices) view.services.delete(k);
  for (const s of d.services) view.services.set(s.id, s);
  for (const k of d.removedEndpoints) view.endpoints.delete(k);
  for (const e of d.endpoints) view.endpoints.set(e.key, e);
  for (const k of d.removedPeers) view.peers.delete(k);
  for (const p of d.peers) view.peers.set(p.nodeId, p);
}

/**
 * Brings `view` up to date after the objects in `dirty` changed, touching only
 * what they can affect, and returns the delta (empty when nothing the node sees
 * changed). When the node's own set of networks changes, recomputes the view.
 */
export function refreshNetworkView(
  r: ClusterReader,
  nodeId: string,
  view: NetworkView,
  dirty: DirtySet,
): ViewDelta {
  const nets = nodeNetworkIds(r, nodeId);
  // the networks the view was built for are those of the tasks it holds: view.networks
  // lacks any whose object is gone, so comparing with it would miss a network leaving
  const prevNets = new Set<string>();
  for (const t of view.tasks.values()) for (const a of t.networks) prevNets.add(a.networkId);
  const sameNets = nets.size === prevNets.size && [...nets].every((id) => prevNets.has(id));
  if (!sameNets) {
    const next = computeNetworkView(r, nodeId);
    const d = diffNetworkViews(view, next);
    applyViewDelta(view, d);
    return d;
  }
  const d = emptyDelta();
  const upsert = <T>(map: Map<string, T>, key: string, value: T | undefined, list: T[], removed: string[]) => {
    const old = map.get(key);
    if (value === undefined) {
      if (old !== undefined) {
        map.delete(key);
        removed.push(key);
      }
    } else if (old === undefined || !same(old, value)) {
      map.set(key, value);
      list.push(value);
    }
  };

  const endpointTasks = new Set<string>(dirty.tasks);
  for (const id of dirty.tasks) {
    const t = r.task(id);
    upsert(view.tasks, id, t && isNodeTask(t, nodeId) ? t : undefined, d.tasks, d.removedTasks);
  }
  for (const id of dirty.networks) {
    const n = r.network(id);
    upsert(view.networks, id, n && nets.has(id) ? viewNetwork(n) : undefined, d.networks, d.removedNetworks);
  }
  for (const id of dirty.nodes) for (const t of r.tasksOfNode(id)) endpointTasks.add(t.id);
  for (const id of dirty.services) {
    const s = r.service(id);
    upsert(view.services, id, s ? viewService(s, nets) : undefined, d.services, d.removedServices);
    for (const t of r.tasksOfService(id)) endpointTasks.add(t.id);
    if (!s) for (const e of view.endpoints.values()) if (e.serviceId === id) endpointTasks.add(e.taskId);
  }

  // endpoints of each touched task: what it should have vs. what the view has
  const touchedPeers = new Set<string>(dirty.nodes);
  for (const taskId of endpointTasks) {
    const t = r.task(taskId);
    const wanted = t && view.services.has(t.serviceId) ? taskEndpoints(t, r, nets) : [];
    const wantedKeys = new Set(wanted.map((e) => e.key));
    for (const a of t?.networks ?? []) {
      const key = `${taskId}/${a.networkId}`;
      if (!wantedKeys.has(key) && view.endpoints.has(key)) {
        touchedPeers.add(view.endpoints.get(key)!.nodeId);
        upsert(view.endpoints, key, undefined, d.endpoints, d.removedEndpoints);
      }
    }
    if (!t) {
      for (const key of [...view.endpoints.keys()]) {
        if (key.startsWith(`${taskId}/`)) {
          touchedPeers.add(view.endpoints.get(key)!.nodeId);
          upsert(view.endpoints, key, undefined, d.endpoints, d.removedEndpoints);
        }
      }
    }
    for (const e of wanted) {
      // a task that moved leaves its old node, which may stop being a peer
      const old = view.endpoints.get(e.key);
      if (old) touchedPeers.add(old.nodeId);
      touchedPeers.add(e.nodeId);
      upsert(view.endpoints, e.key, e, d.endpoints, d.removedEndpoints);
    }
  }

  if (touchedPeers.size > 0) {
    // a peer stays while any endpoint lives on it; count only for touched nodes
    const live = new Map<string, string>();
    for (const e of view.endpoints.values()) {
      if (touchedPeers.has(e.nodeId) && e.nodeId !== nodeId) live.set(e.nodeId, e.nodeAddr);
    }
    for (const id of touchedPeers) {
      if (id === nodeId) continue;
      const addr = live.get(id);
      upsert(view.peers, id, addr === undefined ? undefined : { nodeId: id, addr }, d.peers, d.removedPeers);
    }
  }
  return d;
}
