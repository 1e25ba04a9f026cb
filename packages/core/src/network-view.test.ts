import { describe, expect, it } from "vitest";
import { canonical, fixedCluster, MemoryCluster, network, node, task } from "../test/memory-cluster.ts";
import { computeNetworkView } from "./network-view-derivation.ts";
import { applyViewDelta, diffNetworkViews, emptyDelta, isEmptyDelta } from "./network-view.ts";

describe("diffNetworkViews and applyViewDelta", () => {
  it("turn one view into the other", () => {
    const c = fixedCluster();
    const before = computeNetworkView(c, "n1");
    c.putTask(task("web.2", "web", "n2", { front: "10.0.1.4/24" }, { health: "healthy" }));
    c.putTask(task("web.4", "web", "n3", { front: "10.0.1.7/24" }));
    c.removeTask("api.1");
    c.putNetwork(network("front", "10.0.1.0/24", 4096, true));
    const after = computeNetworkView(c, "n1");

    const d = diffNetworkViews(before, after);
    expect(d.endpoints.map((e) => [e.key, e.ready])).toEqual([
      ["web.2/front", true],
      ["web.4/front", true],
    ]);
    expect(d.removedEndpoints).toEqual(["api.1/front"]);
    expect(d.peers).toEqual([{ nodeId: "n3", addr: "192.168.0.3" }]);
    expect(d.removedPeers).toEqual([]); // n2 still hosts web.2
    expect(d.networks.map((n) => [n.id, n.encrypted])).toEqual([["front", true]]);
    expect([d.tasks, d.removedTasks, d.services, d.removedServices]).toEqual([[], [], [], []]);

    const agent = structuredClone(before);
    applyViewDelta(agent, structuredClone(d));
    expect(canonical(agent)).toEqual(canonical(after));
  });

  it("turn a view into an empty one and back", () => {
    const full = computeNetworkView(fixedCluster(), "n2");
    const empty = computeNetworkView(new MemoryCluster(), "n2");
    const emptied = structuredClone(full);
    applyViewDelta(emptied, diffNetworkViews(full, empty));
    expect(canonical(emptied)).toEqual(canonical(empty));
    applyViewDelta(emptied, diffNetworkViews(empty, full));
    expect(canonical(emptied)).toEqual(canonical(full));
  });

  it("give an empty delta when nothing changed, and only then", () => {
    const c = fixedCluster();
    const v = computeNetworkView(c, "n2");
    expect(isEmptyDelta(diffNetworkViews(v, computeNetworkView(c, "n2")))).toBe(true);
    expect(isEmptyDelta(emptyDelta())).toBe(true);
    c.putNode(node("n3", "192.168.0.33"));
    const d = diffNetworkViews(v, computeNetworkView(c, "n2"));
    expect(isEmptyDelta(d)).toBe(false);
    expect(d.peers).toEqual([{ nodeId: "n3", addr: "192.168.0.33" }]);
    expect(d.endpoints.map((e) => [e.key, e.nodeAddr])).toEqual([["db.1/back", "192.168.0.33"]]);
  });
});
