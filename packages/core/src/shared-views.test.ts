import { isDeepStrictEqual } from "node:util";
import { describe, expect, it } from "vitest";
import { canonical, fixedCluster, MemoryCluster, meshCluster, network, node, service, task } from "../test/memory-cluster.ts";
import { computeNetworkView, nodeNetworkIds } from "./network-view-derivation.ts";
import { applyViewDelta, emptyDelta, emptyView, isEmptyDelta, type NetworkView, type ViewDelta } from "./network-view.ts";
import { seededRandom } from "./seeded-random.ts";
import { type NodeUpdate, SharedViews } from "./shared-views.ts";
import { type EndpointMode, type Network, TASK_STATES } from "./types.ts";

/** An update as the wire carries it: the node's own part, then the shared parts, concatenated field by field. */
function merged(u: NodeUpdate): ViewDelta {
  const d = emptyDelta();
  for (const part of [u.own, ...u.shared]) for (const k of Object.keys(d) as (keyof ViewDelta)[]) (d[k] as unknown[]).push(...part[k]);
  return d;
}

/** Sessions of some nodes on shared views, each with an agent applying what it gets (a copy, as off the wire). */
class Sessions {
  private readonly views: SharedViews;
  private readonly agents = new Map<string, NetworkView>();
  private epoch = 0;

  constructor(
    private readonly c: MemoryCluster,
    nodes: readonly string[],
  ) {
    this.views = new SharedViews(c);
    this.views.load(c.services.values(), c.tasks.values(), c.networks.keys());
    for (const id of nodes) this.reopen(id);
  }

  agent(nodeId: string): NetworkView {
    return this.agents.get(nodeId)!;
  }

  /** A new session: the agent's view is replaced by the full one. */
  reopen(nodeId: string): void {
    const agent = emptyView();
    applyViewDelta(agent, structuredClone(merged(this.views.open(nodeId, ++this.epoch))));
    this.agents.set(nodeId, agent);
  }

  /** Refreshes after a change; what each node got, as its parts (nodes that got nothing are absent). */
  refreshParts(dirty: Parameters<SharedViews["refresh"]>[0]): Map<string, NodeUpdate> {
    const out = new Map<string, NodeUpdate>();
    for (const u of this.views.refresh(dirty, ++this.epoch)) {
      applyViewDelta(this.agents.get(u.nodeId)!, structuredClone(merged(u)));
      out.set(u.nodeId, u);
    }
    return out;
  }

  /** Refreshes after a change; what each node got (nodes that got nothing are absent). */
  refresh(dirty: Parameters<SharedViews["refresh"]>[0]): Map<string, ViewDelta> {
    const out = new Map<string, ViewDelta>();
    for (const u of this.views.refresh(dirty, ++this.epoch)) {
      const d = merged(u);
      applyViewDelta(this.agents.get(u.nodeId)!, structuredClone(d));
      out.set(u.nodeId, d);
    }
    return out;
  }
}

describe("SharedViews: one node's updates", () => {
  /** `nodeId`'s update after `change`, checked against a fresh view; the delta as its agent receives it. */
  function refreshAfter(c: MemoryCluster, nodeId: string, change: () => void): ViewDelta {
    const sessions = new Sessions(c, [nodeId]);
    change();
    const d = sessions.refresh(c.takeDirty()).get(nodeId) ?? emptyDelta();
    expect(canonical(sessions.agent(nodeId))).toEqual(canonical(computeNetworkView(c, nodeId)));
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
    expect(d.services.map((s) => [s.id, s.virtualIps.map((v) => v.networkId)]).sort()).toEqual([
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

describe("SharedViews: what nodes share", () => {
  it("sends a change of a slice as the same object to every node holding it; of their own, at most a new peer", () => {
    const c = fixedCluster();
    const sessions = new Sessions(c, ["n1", "n2", "n3"]);
    c.putTask(task("web.3", "web", "n3", { front: "10.0.1.9/24" }));
    const got = sessions.refreshParts(c.takeDirty());
    const [a, b] = [got.get("n1")!, got.get("n2")!];
    expect(a.shared).toHaveLength(1);
    expect(a.shared[0]).toBe(b.shared[0]);
    expect(isEmptyDelta({ ...a.own, peers: [] })).toBe(true);
    for (const id of ["n1", "n2", "n3"]) expect(canonical(sessions.agent(id))).toEqual(canonical(computeNetworkView(c, id)));
  });

  it("shares a service on several networks (a published one: its own and the mesh) among nodes holding the same of them", () => {
    const c = meshCluster();
    const web = c.services.get("web")!;
    c.putNetwork(network("front", "10.0.1.0/24", 4097));
    c.putService({ ...web, spec: { ...web.spec, networks: [{ target: "front" }, { target: "ingress" }] } });
    c.putTask(task("web.2", "web", "n1", { front: "10.0.1.5/24", ingress: "10.255.0.12/16" }));
    c.takeDirty();
    const sessions = new Sessions(c, ["n1", "n2", "n4"]);
    const withAliases = c.services.get("web")!;
    c.putService({ ...withAliases, spec: { ...withAliases.spec, networks: [{ target: "front", aliases: ["www"] }, { target: "ingress" }] } });
    const got = sessions.refreshParts(c.takeDirty());
    // n1 holds front and the mesh, n2 the mesh only: each sees its own entry, shared, never in its own part
    const entry = (id: string) => got.get(id)!.shared.find((p) => p.services.some((x) => x.id === "web"));
    expect(entry("n1")!.services[0]!.aliases).toEqual([{ networkId: "front", names: ["www"] }]);
    expect(got.has("n2")).toBe(false); // the mesh-only entry did not change
    for (const id of ["n1", "n2"]) {
      expect(got.get(id)?.own.services ?? []).toEqual([]);
      expect(canonical(sessions.agent(id))).toEqual(canonical(computeNetworkView(c, id)));
    }
  });
});

describe("SharedViews: the ingress network", () => {
  it("follows nodes that go down and come back, and tasks that come and go", () => {
    const c = meshCluster();
    const sessions = new Sessions(c, ["n2"]);
    const refresh = () => sessions.refresh(c.takeDirty()).get("n2") ?? emptyDelta();
    c.putNode(node("n1", "192.168.0.1", { ingressAddr: "10.255.0.2/16", state: "down" }));
    let d = refresh();
    expect(d.removedEndpoints).toEqual(["ingress-sandbox/n1"]);
    expect(d.removedPeers).toEqual(["n1"]);
    c.putNode(node("n3", "192.168.0.3", { ingressAddr: "10.255.0.4/16" }));
    expect(refresh().endpoints.map((e) => e.key)).toEqual(["ingress-sandbox/n3"]);
    c.removeTask("web.1");
    d = refresh();
    expect(d.removedEndpoints.sort()).toEqual(["ingress-sandbox/n3", "web.1/ingress"]);
    expect([...sessions.agent("n2").endpoints.keys()]).toEqual(["ingress-sandbox/n2"]);
  });
});

// ---- the property: shared incremental views == from scratch ----------------------

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

describe("SharedViews under random changes", () => {
  const OBSERVED = ["n1", "n2", "n3"] as const;
  const STEPS = 300;

  it.each([1, 2, 3, 4, 5])("gives every agent the view computed from scratch, sessions opening and closing meanwhile (seed %i)", (seed) => {
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

    const sessions = new Sessions(c, OBSERVED);
    let incrementalDeltas = 0;
    let reopened = 0;
    for (let stepNo = 0; stepNo < STEPS; stepNo++) {
      log.length = 0;
      const changes = m.chance(0.5) ? 1 : m.chance(0.5) ? 2 : 3;
      const before = new Map(OBSERVED.map((id) => [id, canonical(sessions.agent(id))]));
      const networksBefore = new Map(OBSERVED.map((id) => [id, nodeNetworkIds(c, id)]));
      for (let i = 0; i < changes; i++) m.step();
      // a session may open between a change and its refresh: it starts from the store as it is then
      const again = m.chance(0.1) ? m.pick(OBSERVED) : undefined;
      if (again) {
        sessions.reopen(again);
        reopened++;
        log.push(`session of ${again} reopened`);
      }
      const deltas = sessions.refresh(c.takeDirty());
      for (const id of OBSERVED) {
        const where = `seed ${seed}, step ${stepNo}, node ${id}, after: ${log.join("; ")}`;
        const expected = canonical(computeNetworkView(c, id));
        expect(canonical(sessions.agent(id)), where).toEqual(expected);
        if (id === again) continue;
        const changed = !isDeepStrictEqual(before.get(id), expected);
        const d = deltas.get(id);
        // an update that changes nothing is allowed only where a service passes between a network's slice and the node's own part
        const swapOnly = d !== undefined && isEmptyDelta({ ...d, services: [], removedServices: [] }) && d.services.every((x) => d.removedServices.includes(x.id));
        expect(changed ? d !== undefined : d === undefined || swapOnly, `${where}: an update iff the view changed: ${JSON.stringify(d)}`).toBe(true);
        if (changed && isDeepStrictEqual(nodeNetworkIds(c, id), networksBefore.get(id))) incrementalDeltas++;
      }
    }
    // the walk must have exercised the incremental path, not only recomputations, and sessions opening mid-change
    expect(incrementalDeltas).toBeGreaterThan(STEPS / 3);
    expect(reopened).toBeGreaterThan(10);
  });
});
