
import { describe, expect, it } from "vitest";
import { canonical, fixedCluster, MemoryCluster, meshCluster, network, node, service, task, type TaskOptions } from "../test/memory-cluster.ts";
import { computeNetworkView } from "./network-view-derivation.ts";

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

describe("the ingress network", () => {
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
});
