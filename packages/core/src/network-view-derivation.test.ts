import { isDeepStrictEqual } from "node:util";
import { describe, expect, it } from "vitest";
import { canonical, fixedCluster, MemoryCluster, network, node, service, task, type TaskOptions } from "../test/memory-cluster.ts";
import { computeNetworkView, nodeNetworkIds, refreshNetworkView } from "./network-view-derivation.ts";
import { applyViewDelta, isEmptyDelta } from "./network-view.ts";
import { seededRandom } from "./seeded-random.ts";
import { type EndpointMode, type Network, TASK_STATES } from "./types.ts";

const keys = <T>(m: Map<string, T>) => [...m.keys()].sort();

describe("computeNetworkView", () => {
  it("holds the node's non-terminal tasks and only the networks they attach to", () => {
    const v = computeNetworkView(fixedCluster(), "n1");
    expect(keys(v.tasks)).toEqual(["web.1"]);
    expect([...v.networks.values()]).toEqual([
      { id: "front", name: "front", subnet: "10.0.1.0/24", gateway: "10.0.1.1", vni: 4096, encrypted: false, ingress: false },
    ]);
  });

  it("holds only services on the node's networks, with only those networks' VIPs", () => {
    const v = computeNetworkView(fixedCluster(), "n1");
    expect(keys(v.services)).toEqual(["api", "web"]);
    expect(v.services.get("api")).toEqual({
      id: "api",
      name: "api",
      endpointMode: "vip",
      ports: [{ protocol: "tcp", targetPort: 80, publishedPort: 30000, publishMode: "ingress" }],
      virtualIps: [{ networkId: "front", addr: "10.0.1.101/24" }],
      lbScheduler: "",
    });
  });

  it("holds endpoints of running and starting tasks on ready nodes, on the node's networks only", () => {
    const v = computeNetworkView(fixedCluster(), "n1");
    // web.3 is on a down node, web.old is shut down, api.1/back and db.1 are on a network n1 is not on
    expect(keys(v.endpoints)).toEqual(["api.1/front", "web.1/front", "web.2/front"]);
    expect(v.endpoints.get("web.1/front")).toEqual({
      key: "web.1/front",
      taskId: "web.1",
      serviceId: "web",
      networkId: "front",
      addr: "10.0.1.3/24",
      mac: "02:42:0a:00:01:03",
      nodeId: "n1",
      nodeAddr: "192.168.0.1",
      ready: true,
      weight: 1,
    });
    expect(v.endpoints.get("web.2/front")?.ready).toBe(false); // unhealthy
    expect(v.endpoints.get("api.1/front")?.ready).toBe(false); // starting
  });

  it("lists as peers the other nodes that host endpoints, never the node itself", () => {
    expect([...computeNetworkView(fixedCluster(), "n1").peers.values()]).toEqual([
      { nodeId: "n2", addr: "192.168.0.2" },
    ]);
    expect(keys(computeNetworkView(fixedCluster(), "n2").peers)).toEqual(["n1", "n3"]);
    expect(keys(computeNetworkView(fixedCluster(), "n3").peers)).toEqual(["n2"]);
  });

  it("sees everything on all networks of a node with tasks on several", () => {
    const v = computeNetworkView(fixedCluster(), "n2");
    expect(keys(v.tasks)).toEqual(["api.1", "web.2"]);
    expect(keys(v.networks)).toEqual(["back", "front"]);
    expect(keys(v.services)).toEqual(["api", "db", "web"]);
    expect(v.services.get("db")?.virtualIps).toEqual([]);
    expect(keys(v.endpoints)).toEqual(["api.1/back", "api.1/front", "db.1/back", "web.1/front", "web.2/front"]);
    expect(v.endpoints.get("api.1/back")?.mac).toBe("02:42:0a:00:02:03");
  });

  it("is empty for a node without tasks, and for a node whose tasks are all terminal", () => {
    const c = fixedCluster();
    expect(canonical(computeNetworkView(c, "n9"))).toEqual(canonical(computeNetworkView(new MemoryCluster(), "n9")));
    c.putTask(task("web.1", "web", "n1", { front: "10.0.1.3/24" }, { state: "failed" }));
    const v = computeNetworkView(c, "n1");
    expect([v.tasks.size, v.networks.size, v.services.size, v.endpoints.size, v.peers.size]).toEqual([0, 0, 0, 0, 0]);
  });

  it.each(["new", "pending"] as const)("does not count a %s task (meant for the node, not yet assigned)", (state) => {
    const c = fixedCluster();
    c.putTask(task("db.2", "db", "n1", { back: "10.0.2.5/24" }, { state }));
    const v = computeNetworkView(c, "n1");
    expect(keys(v.tasks)).toEqual(["web.1"]);
    expect(keys(v.networks)).toEqual(["front"]);
  });

  it("gives no endpoint to a task without an address yet, but counts its network", () => {
    const c = new MemoryCluster();
    c.putNode(node("n1", "192.168.0.1"));
    c.putNetwork(network("front", "10.0.1.0/24"));
    c.putService(service("web", { front: "10.0.1.100/24" }));
    c.putTask(task("web.1", "web", "n1", { front: "" }, { state: "assigned" }));
    const v = computeNetworkView(c, "n1");
    expect(keys(v.networks)).toEqual(["front"]);
    expect(keys(v.services)).toEqual(["web"]);
    expect(v.endpoints.size).toBe(0);
  });

  describe("endpoint of a task by its state", () => {
    const viewWith = (o: TaskOptions) => {
      const c = new MemoryCluster();
      c.putNode(node("n1", "192.168.0.1"));
      c.putNode(node("n2", "192.168.0.2"));
      c.putNetwork(network("front", "10.0.1.0/24"));
      c.putService(service("web", { front: "10.0.1.100/24" }));
      c.putTask(task("web.1", "web", "n1", { front: "10.0.1.3/24" }));
      c.putTask(task("web.2", "web", "n2", { front: "10.0.1.4/24" }, o));
      return computeNetworkView(c, "n1");
    };

    it.each<[TaskOptions, "absent" | "ready" | "not ready"]>([
      [{ state: "new" }, "absent"],
      [{ state: "pending" }, "absent"],
      [{ state: "assigned" }, "not ready"],
      [{ state: "starting" }, "not ready"],
      [{ state: "running" }, "ready"],
      [{ state: "complete" }, "absent"],
      [{ state: "shutdown" }, "absent"],
      [{ state: "failed" }, "absent"],
      [{ state: "rejected" }, "absent"],
      [{ state: "orphaned" }, "absent"],
      // draining: no new connections, but its overlay entries stay until it has stopped
      [{ state: "running", desiredState: "shutdown" }, "not ready"],
      [{ state: "starting", desiredState: "shutdown" }, "not ready"],
      [{ state: "shutdown", desiredState: "shutdown" }, "absent"],
      [{ state: "running", health: "" }, "ready"],
      [{ state: "running", health: "healthy" }, "ready"],
      [{ state: "running", health: "starting" }, "not ready"],
      [{ state: "running", health: "unhealthy" }, "not ready"],
      // a task with a health check is ready once it passed it, not before its first report of it
      [{ state: "running", health: "", checked: true }, "not ready"],
      [{ state: "running", health: "starting", checked: true }, "not ready"],
      [{ state: "running", health: "healthy", checked: true }, "ready"],
    ])("%j → %s", (o, expected) => {
      const v = viewWith(o);
      const e = v.endpoints.get("web.2/front");
      expect(e === undefined ? "absent" : e.ready ? "ready" : "not ready").toBe(expected);
      expect(v.peers.has("n2")).toBe(expected !== "absent");
    });
  });
});

describe("refreshNetworkView", () => {
  /** Refreshes `nodeId`'s view after `change`, checks it against a fresh one, returns the delta. */
  function refreshAfter(c: MemoryCluster, nodeId: string, change: () => void) {
    const view = computeNetworkView(c, nodeId);
    const agent = structuredClone(view);
    c.takeDirty();
    change();
    const d = refreshNetworkView(c, nodeId, view, c.takeDirty());
    const expected = canonical(computeNetworkView(c, nodeId));
    expect(canonical(view)).toEqual(expected);
    applyViewDelta(agent, structuredClone(d));
    expect(canonical(agent)).toEqual(expected);
    return d;
  }

  it("returns an empty delta for changes the node does not see", () => {
    const c = fixedCluster();
    const d = refreshAfter(c, "n1", () => {
      c.putTask(task("metrics.2", "metrics", "n2", { other: "10.0.9.4/24" }));
      c.putNode(node("n2", "192.168.0.2", { availability: "drain" }));
      c.putNetwork(network("back", "10.0.2.0/24", 4097, false));
    });
    expect(isEmptyDelta(d)).toBe(true);
  });

  it("sends a task's state change as an endpoint change", () => {
    const c = fixedCluster();
    const d = refreshAfter(c, "n1", () => c.putTask(task("web.2", "web", "n2", { front: "10.0.1.4/24" })));
    expect(d.endpoints.map((e) => [e.key, e.ready])).toEqual([["web.2/front", true]]);
    expect(isEmptyDelta({ ...d, endpoints: [] })).toBe(true);
  });

  it("drops endpoints and the peer of a node that goes down", () => {
    const c = fixedCluster();
    const d = refreshAfter(c, "n1", () => c.putNode(node("n2", "192.168.0.2", { state: "down" })));
    expect(d.removedEndpoints.sort()).toEqual(["api.1/front", "web.2/front"]);
    expect(d.removedPeers).toEqual(["n2"]);
  });

  it("recomputes when the node joins a network", () => {
    const c = fixedCluster();
    const d = refreshAfter(c, "n1", () => c.putTask(task("db.2", "db", "n1", { back: "10.0.2.5/24" })));
    expect(d.networks.map((n) => n.id)).toEqual(["back"]);
    // api was seen with its front VIP only; now with its back VIP too
    expect(d.services.map((s) => [s.id, s.virtualIps.map((v) => v.networkId)])).toEqual([
      ["api", ["front", "back"]],
      ["db", []],
    ]);
    expect(d.peers.map((p) => p.nodeId)).toEqual(["n3"]);
  });

  it("carries a service's aliases on the node's networks only, and sends a change of them", () => {
    const c = fixedCluster();
    const api = c.services.get("api")!;
    const withAliases = (front: string[]) => ({
      ...api,
      spec: { ...api.spec, networks: [{ target: "front", aliases: front }, { target: "back", aliases: ["api_back"] }] },
    });
    const d = refreshAfter(c, "n1", () => c.putService(withAliases(["api_v1", "demo.api"])));
    expect(d.services.map((s) => [s.id, s.aliases])).toEqual([["api", [{ networkId: "front", names: ["api_v1", "demo.api"] }]]]);
    const none = refreshAfter(c, "n1", () => c.putService(withAliases([])));
    expect(none.services.map((s) => [s.id, s.aliases])).toEqual([["api", undefined]]);
  });

  it("drops the peer a task moved away from", () => {
    const c = fixedCluster();
    c.removeTask("api.1"); // web.2 is then n2's only endpoint
    const d = refreshAfter(c, "n1", () => c.putTask({ ...c.task("web.2")!, nodeId: "n3" }));
    expect(d.endpoints.map((e) => [e.key, e.nodeId])).toEqual([["web.2/front", "n3"]]);
    expect(d.peers).toEqual([{ nodeId: "n3", addr: "192.168.0.3" }]);
    expect(d.removedPeers).toEqual(["n2"]);
  });

  it("drops what a network brought in when the node leaves it, even after the network object is gone", () => {
    const c = fixedCluster();
    c.removeNetwork("back"); // n2's view no longer lists it, but api.1 still attaches to it
    const api1 = c.task("api.1")!;
    const d = refreshAfter(c, "n2", () => c.putTask({ ...api1, status: { ...api1.status, state: "failed" } }));
    expect(d.removedTasks).toEqual(["api.1"]);
    expect(d.removedServices).toEqual(["db"]);
    expect(d.removedEndpoints.sort()).toEqual(["api.1/back", "api.1/front", "db.1/back"]);
    expect(d.removedPeers).toEqual(["n3"]);
  });

  it("drops a removed service with its endpoints", () => {
    const c = fixedCluster();
    const d = refreshAfter(c, "n1", () => c.removeService("api"));
    expect(d.removedServices).toEqual(["api"]);
    expect(d.removedEndpoints).toEqual(["api.1/front"]);
  });
});

describe("the ingress network", () => {
  function meshCluster(): MemoryCluster {
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

  it("is in the view of every node with an ingress sandbox, task or not, with its own sandbox as an endpoint", () => {
    const v = computeNetworkView(meshCluster(), "n1");
    expect([...v.networks.keys()]).toEqual(["ingress"]);
    expect([...v.services.keys()]).toEqual(["web"]);
    expect([...v.endpoints.keys()].sort()).toEqual(["ingress-sandbox/n1", "web.1/ingress"]);
    expect(v.endpoints.get("ingress-sandbox/n1")).toMatchObject({ taskId: "", serviceId: "", addr: "10.255.0.2/16", nodeAddr: "192.168.0.1", ready: true });
    expect([...v.peers.keys()]).toEqual(["n2"]);
    expect(computeNetworkView(meshCluster(), "n4").networks.size).toBe(0);
  });

  it("holds every ready node's ingress sandbox where a task on the ingress network runs: it answers them over the overlay", () => {
    const v = computeNetworkView(meshCluster(), "n2");
    expect([...v.endpoints.keys()].sort()).toEqual(["ingress-sandbox/n1", "ingress-sandbox/n2", "web.1/ingress"]);
    expect([...v.peers.keys()]).toEqual(["n1"]);
  });

  it("follows nodes that go down and come back, and tasks that come and go", () => {
    const c = meshCluster();
    const v = computeNetworkView(c, "n2");
    c.putNode(node("n1", "192.168.0.1", { ingressAddr: "10.255.0.2/16", state: "down" }));
    let d = refreshNetworkView(c, "n2", v, c.takeDirty());
    expect(d.removedEndpoints).toEqual(["ingress-sandbox/n1"]);
    expect(d.removedPeers).toEqual(["n1"]);
    c.putNode(node("n3", "192.168.0.3", { ingressAddr: "10.255.0.4/16" }));
    expect(refreshNetworkView(c, "n2", v, c.takeDirty()).endpoints.map((e) => e.key)).toEqual(["ingress-sandbox/n3"]);
    c.removeTask("web.1");
    d = refreshNetworkView(c, "n2", v, c.takeDirty());
    expect(d.removedEndpoints.sort()).toEqual(["ingress-sandbox/n3", "web.1/ingress"]);
    expect([...v.endpoints.keys()]).toEqual(["ingress-sandbox/n2"]);
  });
});

// ---- the property: incremental == from scratch -------------------------------

/** Random changes to a MemoryCluster, each described in `log` for failure messages. */
class Mutator {
  private serial = 0;
  constructor(
    readonly c: MemoryCluster,
    private readonly random: () => number,
    readonly log: string[],
  ) {}

  pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[Math.floor(this.random() * items.length)];
  }
  chance(p: number): boolean {
    return this.random() < p;
  }
  private nextId(prefix: string): string {
    return `${prefix}${++this.serial}`;
  }
  private addressOn(networkId: string): string {
    const n = this.c.network(networkId);
    const base = n ? n.ipam.subnet.split(".").slice(0, 3).join(".") : "10.255.255";
    return `${base}.${2 + Math.floor(this.random() * 250)}/24`;
  }

  addNetwork(): void {
    const id = this.nextId("net");
    this.c.putNetwork(network(id, `10.${this.serial % 200}.0.0/24`, 4096 + this.serial));
    this.log.push(`add network ${id}`);
  }

  addService(): void {
    const id = this.nextId("svc");
    const nets = [...this.c.networks.keys()].filter(() => this.chance(0.4));
    const mode: EndpointMode = this.chance(0.2) ? "dnsrr" : "vip";
    this.c.putService(service(id, Object.fromEntries(nets.map((n) => [n, this.addressOn(n)])), mode));
    this.log.push(`add service ${id} on [${nets}] ${mode}`);
  }

  addTask(): void {
    const s = this.pick([...this.c.services.values()]);
    const nodeId = this.pick([...this.c.nodeById.keys()]);
    if (!s || !nodeId) return;
    const id = this.nextId(`${s.id}.`);
    const addrs = Object.fromEntries(
      s.spec.networks.map((n) => [n.target, this.chance(0.8) ? this.addressOn(n.target) : ""]),
    );
    const state = this.pick(["assigned", "starting", "running", "running", "running"] as const);
    this.c.putTask(task(id, s.id, nodeId, addrs, { state }));
    this.log.push(`add task ${id} on ${nodeId} ${state}`);
  }

  step(): void {
    const c = this.c;
    const t = this.pick([...c.tasks.values()]);
    const n = this.pick([...c.nodeById.values()]);
    const s = this.pick([...c.services.values()]);
    const net = this.pick([...c.networks.values()]);
    const r = this.random();
    if (r < 0.18) this.addTask();
    else if (r < 0.26 && t) {
      c.removeTask(t.id);
      this.log.push(`remove task ${t.id}`);
    } else if (r < 0.46 && t) {
      const state = this.pick(TASK_STATES)!;
      const health = this.pick(["", "", "starting", "healthy", "unhealthy"] as const)!;
      const desiredState = this.chance(0.85) ? "running" : "shutdown";
      c.putTask({ ...t, desiredState, status: { ...t.status, state, health } });
      this.log.push(`task ${t.id} → ${state}/${health || "-"}/${desiredState}`);
    } else if (r < 0.52 && t) {
      const networks = t.networks.map((a) => ({ ...a, addresses: [this.addressOn(a.networkId)] }));
      c.putTask({ ...t, networks });
      this.log.push(`task ${t.id} gets addresses`);
    } else if (r < 0.6 && t) {
      const to = this.pick([...c.nodeById.keys()])!;
      c.putTask({ ...t, nodeId: to });
      this.log.push(`move task ${t.id} ${t.nodeId} → ${to}`);
    } else if (r < 0.7 && n) {
      const state = this.pick(["ready", "ready", "down", "unknown"] as const)!;
      c.putNode({ ...n, status: { ...n.status, state } });
      this.log.push(`node ${n.id} → ${state}`);
    } else if (r < 0.73 && n) {
      const addr = `192.168.1.${Math.floor(this.random() * 250)}`;
      c.putNode({ ...n, status: { ...n.status, addr } });
      this.log.push(`node ${n.id} addr → ${addr}`);
    } else if (r < 0.74 && n) {
      const ingressAddr = n.status.ingressAddr ? "" : `10.255.0.${Math.floor(this.random() * 250) + 2}/16`;
      c.putNode({ ...n, status: { ...n.status, ingressAddr } });
      this.log.push(`node ${n.id} ingress sandbox → ${ingressAddr || "none"}`);
    } else if (r < 0.75 && n) {
      const availability = n.spec.availability === "active" ? "drain" : "active";
      c.putNode({ ...n, spec: { ...n.spec, availability } });
      this.log.push(`node ${n.id} → ${availability}`);
    } else if (r < 0.8) this.addService();
    else if (r < 0.84 && s) {
      c.removeService(s.id);
      this.log.push(`remove service ${s.id}`);
    } else if (r < 0.9 && s) {
      // changed networks: new VIPs, and its tasks get replaced later
      const nets = [...c.networks.keys()].filter(() => this.chance(0.4));
      const mode = s.spec.endpointSpec.mode;
      const next = service(s.id, Object.fromEntries(nets.map((id) => [id, this.addressOn(id)])), mode);
      c.putService({ ...next, version: s.version + 1 });
      this.log.push(`service ${s.id} → [${nets}]`);
    } else if (r < 0.93) this.addNetwork();
    else if (r < 0.96 && net) {
      c.putNetwork({ ...net, encrypted: !net.encrypted });
      this.log.push(`network ${net.id} encrypted → ${!net.encrypted}`);
    } else if (net) {
      this.removeNetwork(net);
    }
  }

  /**
   * Removes a network even while services or tasks use it: the manager refuses
   * that, but the view must follow the reader's state whatever it is.
   */
  private removeNetwork(net: Network): void {
    this.c.removeNetwork(net.id);
    this.log.push(`remove network ${net.id}`);
  }
}

describe("refreshNetworkView under random changes", () => {
  const OBSERVED = ["n1", "n2", "n3"] as const;
  const STEPS = 300;

  it.each([1, 2, 3])("matches a view computed from scratch, and so does an agent applying the deltas (seed %i)", (seed) => {
    const c = new MemoryCluster();
    const log: string[] = [];
    const m = new Mutator(c, seededRandom(seed), log);
    for (const id of [...OBSERVED, "n4", "n5"]) c.putNode(node(id, `192.168.0.${id.slice(1)}`, { ingressAddr: `10.255.0.${id.slice(1)}/16` }));
    const ingress = network("ingress", "10.255.0.0/16", 4095);
    c.putNetwork({ ...ingress, spec: { ...ingress.spec, ingress: true } });
    for (let i = 0; i < 3; i++) m.addNetwork();
    for (let i = 0; i < 4; i++) m.addService();
    for (let i = 0; i < 10; i++) m.addTask();
    c.takeDirty();

    const views = new Map(OBSERVED.map((id) => [id, computeNetworkView(c, id)]));
    const agents = new Map(OBSERVED.map((id) => [id, structuredClone(views.get(id)!)]));
    let incrementalDeltas = 0;

    for (let stepNo = 0; stepNo < STEPS; stepNo++) {
      log.length = 0;
      const changes = m.chance(0.5) ? 1 : m.chance(0.5) ? 2 : 3;
      for (let i = 0; i < changes; i++) m.step();
      const dirty = c.takeDirty();
      for (const id of OBSERVED) {
        const where = `seed ${seed}, step ${stepNo}, node ${id}, after: ${log.join("; ")}`;
        const view = views.get(id)!;
        const before = canonical(view);
        const networksBefore = new Set(before.tasks.flatMap(([, t]) => t.networks.map((a) => a.networkId)));
        const delta = refreshNetworkView(c, id, view, dirty);
        const expected = canonical(computeNetworkView(c, id));
        expect(canonical(view), where).toEqual(expected);
        const changed = !isDeepStrictEqual(before, expected);
        expect(isEmptyDelta(delta), `${where}: delta is empty iff nothing changed`).toBe(!changed);

        const agent = agents.get(id)!;
        applyViewDelta(agent, structuredClone(delta));
        expect(canonical(agent), `${where}: agent`).toEqual(expected);
        if (isDeepStrictEqual(nodeNetworkIds(c, id), networksBefore) && !isEmptyDelta(delta)) incrementalDeltas++;
      }
    }
    // the walk must have exercised the incremental path, not only recomputations
    expect(incrementalDeltas).toBeGreaterThan(STEPS / 3);
  });
});
