// A cluster in memory for core's network-view tests: builders of nodes, networks,
// services and tasks, a ClusterReader that records what changed, and a fixed cluster.

import { gatewayOf } from "../src/ipam.ts";
import type { ClusterReader, DirtySet } from "../src/network-view-derivation.ts";
import type { NetworkView } from "../src/network-view.ts";
import type { DesiredState, EndpointMode, Network, Node, NodeAvailability, NodeState, Service, Task, TaskHealth, TaskState } from "../src/types.ts";
import { normalizeServiceSpec } from "../src/validation.ts";

// ---- builders ---------------------------------------------------------------

const meta = (id: string) => ({ id, version: 1, createdAt: "", updatedAt: "" });

interface NodeOptions {
  state?: NodeState;
  ingressAddr?: string;
  availability?: NodeAvailability;
}

export const node = (id: string, addr: string, o: NodeOptions = {}): Node => ({
  ...meta(id),
  spec: { labels: {}, availability: o.availability ?? "active" },
  description: { hostname: id },
  status: { state: o.state ?? "ready", message: "", addr, ...(o.ingressAddr ? { ingressAddr: o.ingressAddr } : {}) },
});

export const network = (id: string, subnet: string, vni = 4096, encrypted = false): Network => ({
  ...meta(id),
  spec: { name: id, driver: "overlay", labels: {}, options: {}, ipam: [], ingress: false },
  ipam: { subnet, gateway: gatewayOf(subnet) },
  vni,
  encrypted,
});

/** A service attached to `vips`' networks; in vip mode each gets the given VIP. */
export const service = (id: string, vips: Record<string, string>, mode: EndpointMode = "vip"): Service => {
  const spec = normalizeServiceSpec({
    annotations: { name: id },
    taskTemplate: { container: { command: ["run"] } },
    networks: Object.keys(vips).map((target) => ({ target })),
    endpointSpec: { mode, ports: [{ targetPort: 80, publishedPort: 30000, publishMode: mode === "vip" ? "ingress" : "host" }] },
  });
  const ports = spec.endpointSpec.ports;
  return {
    ...meta(id),
    spec,
    endpoint: {
      spec: spec.endpointSpec,
      ports,
      virtualIps: mode === "vip" ? Object.entries(vips).map(([networkId, addr]) => ({ networkId, addr })) : [],
    },
    updateStatus: { state: "", startedAt: "", completedAt: "", message: "" },
    specVersion: 1,
  };
};

export interface TaskOptions {
  state?: TaskState;
  desiredState?: DesiredState;
  health?: TaskHealth;
  /** The task's spec has a health check. */
  checked?: boolean;
}

/** A task of `serviceId` on `nodeId` with an address per network ("" = not allocated yet). */
export const task = (id: string, serviceId: string, nodeId: string, addrs: Record<string, string>, o: TaskOptions = {}): Task => ({
  ...meta(id),
  serviceId,
  serviceName: serviceId,
  slot: 1,
  nodeId,
  specVersion: 1,
  spec: {
    container: { command: ["run"], env: [], ...(o.checked ? { healthcheck: { test: ["true"], intervalMs: 1000, timeoutMs: 1000, retries: 1, startPeriodMs: 0 } } : {}) },
    placement: { constraints: [] },
    forceUpdate: 0,
  },
  desiredState: o.desiredState ?? "running",
  status: { state: o.state ?? "running", timestamp: "", message: "", err: "", health: o.health ?? "" },
  networks: Object.entries(addrs).map(([networkId, addr]) => ({ networkId, addresses: addr ? [addr] : [] })),
});

// ---- an in-memory cluster ---------------------------------------------------

/**
 * Cluster state in Maps with the indexes the view needs, like the manager's
 * store: objects are replaced, never changed in place, and every write marks
 * the object's ID dirty.
 */
export class MemoryCluster implements ClusterReader {
  readonly nodeById = new Map<string, Node>();
  readonly networks = new Map<string, Network>();
  readonly services = new Map<string, Service>();
  readonly tasks = new Map<string, Task>();
  private readonly byNode = new Map<string, Set<string>>();
  private readonly byService = new Map<string, Set<string>>();
  private dirty = MemoryCluster.noneDirty();

  private static noneDirty() {
    return { nodes: new Set<string>(), networks: new Set<string>(), services: new Set<string>(), tasks: new Set<string>() };
  }

  node = (id: string) => this.nodeById.get(id);
  nodes = () => this.nodeById.values();
  ingressNetwork = () => [...this.networks.values()].find((n) => n.spec.ingress);
  network = (id: string) => this.networks.get(id);
  service = (id: string) => this.services.get(id);
  task = (id: string) => this.tasks.get(id);

  *tasksOfNode(nodeId: string): Iterable<Task> {
    for (const id of this.byNode.get(nodeId) ?? []) yield this.tasks.get(id)!;
  }

  *tasksOfService(serviceId: string): Iterable<Task> {
    for (const id of this.byService.get(serviceId) ?? []) yield this.tasks.get(id)!;
  }

  *servicesOnNetworks(networkIds: ReadonlySet<string>): Iterable<Service> {
    for (const s of this.services.values()) if (s.spec.networks.some((n) => networkIds.has(n.target))) yield s;
  }

  putNode(n: Node): void {
    this.nodeById.set(n.id, n);
    this.dirty.nodes.add(n.id);
  }

  putNetwork(n: Network): void {
    this.networks.set(n.id, n);
    this.dirty.networks.add(n.id);
  }

  removeNetwork(id: string): void {
    this.networks.delete(id);
    this.dirty.networks.add(id);
  }

  putService(s: Service): void {
    this.services.set(s.id, s);
    this.dirty.services.add(s.id);
  }

  removeService(id: string): void {
    this.services.delete(id);
    this.dirty.services.add(id);
  }

  putTask(t: Task): void {
    this.unindex(t.id);
    this.tasks.set(t.id, t);
    index(this.byNode, t.nodeId, t.id);
    index(this.byService, t.serviceId, t.id);
    this.dirty.tasks.add(t.id);
  }

  removeTask(id: string): void {
    this.unindex(id);
    this.tasks.delete(id);
    this.dirty.tasks.add(id);
  }

  /** The IDs written since the last call. */
  takeDirty(): DirtySet {
    const d = this.dirty;
    this.dirty = MemoryCluster.noneDirty();
    return d;
  }

  private unindex(taskId: string): void {
    const old = this.tasks.get(taskId);
    if (!old) return;
    this.byNode.get(old.nodeId)?.delete(taskId);
    this.byService.get(old.serviceId)?.delete(taskId);
  }
}

function index(m: Map<string, Set<string>>, key: string, id: string): void {
  let s = m.get(key);
  if (!s) m.set(key, (s = new Set()));
  s.add(id);
}

/** A view as sorted [key, value] lists, so that two views compare regardless of insertion order. */
export const canonical = (v: NetworkView) => ({
  tasks: sorted(v.tasks),
  networks: sorted(v.networks),
  services: sorted(v.services),
  endpoints: sorted(v.endpoints),
  peers: sorted(v.peers),
});

const sorted = <T>(m: Map<string, T>): [string, T][] => [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

// ---- a fixed cluster --------------------------------------------------------

/**
 * n1, n2, n3 ready, n4 down. Networks front, back, other.
 * web on front; api on front+back; db on back; metrics on other.
 */
export function fixedCluster(): MemoryCluster {
  const c = new MemoryCluster();
  c.putNode(node("n1", "192.168.0.1"));
  c.putNode(node("n2", "192.168.0.2"));
  c.putNode(node("n3", "192.168.0.3"));
  c.putNode(node("n4", "192.168.0.4", { state: "down" }));
  c.putNetwork(network("front", "10.0.1.0/24", 4096));
  c.putNetwork(network("back", "10.0.2.0/24", 4097, true));
  c.putNetwork(network("other", "10.0.9.0/24", 4098));
  c.putService(service("web", { front: "10.0.1.100/24" }));
  c.putService(service("api", { front: "10.0.1.101/24", back: "10.0.2.101/24" }));
  c.putService(service("db", { back: "10.0.2.102/24" }, "dnsrr"));
  c.putService(service("metrics", { other: "10.0.9.100/24" }));
  c.putTask(task("web.1", "web", "n1", { front: "10.0.1.3/24" }));
  c.putTask(task("web.2", "web", "n2", { front: "10.0.1.4/24" }, { health: "unhealthy" }));
  c.putTask(task("web.3", "web", "n4", { front: "10.0.1.5/24" }));
  c.putTask(task("web.old", "web", "n1", { front: "10.0.1.2/24" }, { state: "shutdown", desiredState: "shutdown" }));
  c.putTask(task("api.1", "api", "n2", { front: "10.0.1.6/24", back: "10.0.2.3/24" }, { state: "starting" }));
  c.putTask(task("db.1", "db", "n3", { back: "10.0.2.4/24" }));
  c.putTask(task("metrics.1", "metrics", "n3", { other: "10.0.9.3/24" }));
  c.takeDirty();
  return c;
}

/** A cluster with the routing mesh: n1, n2 ready with ingress sandboxes, n3 down, n4 without one yet; web.1 on n2 publishes through it. */
export function meshCluster(): MemoryCluster {
  const c = new MemoryCluster();
  const ingress = network("ingress", "10.255.0.0/16", 4096);
  c.putNetwork({ ...ingress, spec: { ...ingress.spec, ingress: true } });
  c.putNode(node("n1", "192.168.0.1", { ingressAddr: "10.255.0.2/16" }));
  c.putNode(node("n2", "192.168.0.2", { ingressAddr: "10.255.0.3/16" }));
  c.putNode(node("n3", "192.168.0.3", { ingressAddr: "10.255.0.4/16", state: "down" }));
  c.putNode(node("n4", "192.168.0.4")); // registered before it had an address
  c.putService(service("web", { ingress: "10.255.0.10/16" }));
  c.putTask(task("web.1", "web", "n2", { ingress: "10.255.0.11/16" }));
  c.takeDirty();
  return c;
}
