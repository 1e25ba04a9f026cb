// A node's network view derived from cluster state, from scratch: the
// definition the manager's shared views (shared-views.ts) keep up to date
// incrementally, and the pieces both build a view from.

import { macForIpv4 } from "./ipv4.ts";
import {
  emptyView,
  ingressSandboxKey,
  type NetworkView,
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
export const isEndpointTask = (t: Task, r: ClusterReader): boolean =>
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

export function viewNetwork(n: Network): ViewNetwork {
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

export function viewService(s: Service, nets: ReadonlySet<string>): ViewService | undefined {
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

/** A task's endpoints, one per network it has an address on: none unless it is an endpoint task of an existing service. */
export function taskEndpoints(t: Task, r: ClusterReader): ViewEndpoint[] {
  const service = r.service(t.serviceId);
  if (!isEndpointTask(t, r) || !service) return [];
  const weight = service.spec.endpointSpec.lbWeights[String(t.slot)] ?? 1;
  const nodeAddr = r.node(t.nodeId)!.status.addr;
  const out: ViewEndpoint[] = [];
  for (const a of t.networks) {
    const addr = a.addresses[0];
    if (!addr) continue;
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
export type SandboxScope = "none" | "own" | "all";

export function sandboxScope(r: ClusterReader, nets: ReadonlySet<string>, ownTasks: Iterable<Task>): SandboxScope {
  const ingress = r.ingressNetwork();
  if (!ingress || !nets.has(ingress.id)) return "none";
  for (const t of ownTasks) if (t.networks.some((a) => a.networkId === ingress.id)) return "all";
  return "own";
}

/**
 * A ready node's ingress sandbox, as an endpoint of the ingress network: of
 * no service (no task, no load balancing, no DNS), but on the overlay, since
 * the tasks it forwards published traffic to answer its address.
 */
export function ingressSandboxEndpoint(r: ClusterReader, nodeId: string): ViewEndpoint | undefined {
  const ingress = r.ingressNetwork();
  const n = r.node(nodeId);
  const addr = n?.status.ingressAddr;
  if (!ingress || !n || !addr || n.status.state !== "ready") return undefined;
  return {
    key: ingressSandboxKey(n.id),
    taskId: "",
    serviceId: "",
    networkId: ingress.id,
    addr,
    mac: macForIpv4(addr),
    nodeId: n.id,
    nodeAddr: n.status.addr,
    ready: true,
    weight: 1,
  };
}

/** The node's own tasks: those it must run or stop. */
function* ownTasks(r: ClusterReader, nodeId: string): Iterable<Task> {
  for (const t of r.tasksOfNode(nodeId)) if (isNodeTask(t, nodeId)) yield t;
}

/**
 * The whole view of one node, from scratch: its tasks; the networks they
 * attach to; the services on those networks, with those networks' VIPs; the
 * endpoints on those networks (of any existing service: a task keeps the
 * attachments it was made with while its service moves networks); the ingress
 * sandboxes it sees; and the other nodes hosting any of those endpoints.
 */
export function computeNetworkView(r: ClusterReader, nodeId: string): NetworkView {
  const view = emptyView();
  const nets = nodeNetworkIds(r, nodeId);
  for (const t of ownTasks(r, nodeId)) view.tasks.set(t.id, t);
  for (const id of nets) {
    const n = r.network(id);
    if (n) view.networks.set(id, viewNetwork(n));
  }
  for (const s of r.servicesOnNetworks(nets)) {
    const vs = viewService(s, nets);
    if (vs) view.services.set(s.id, vs);
  }
  for (const n of r.nodes()) {
    for (const t of r.tasksOfNode(n.id)) for (const e of taskEndpoints(t, r)) if (nets.has(e.networkId)) view.endpoints.set(e.key, e);
  }
  const scope = sandboxScope(r, nets, ownTasks(r, nodeId));
  for (const n of scope === "all" ? r.nodes() : scope === "own" ? [r.node(nodeId)] : []) {
    const e = n && ingressSandboxEndpoint(r, n.id);
    if (e) view.endpoints.set(e.key, e);
  }
  for (const e of view.endpoints.values()) {
    if (e.nodeId !== nodeId && e.nodeAddr) view.peers.set(e.nodeId, { nodeId: e.nodeId, addr: e.nodeAddr });
  }
  return view;
}
