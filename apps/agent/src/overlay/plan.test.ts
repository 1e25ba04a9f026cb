import { emptyView, macForIpv4, type NetworkView, type ViewEndpoint, type ViewNetwork } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { checkOverlayPlan } from "../exec/canonical.ts";
import { ipsecPlanFor } from "../ipsec/plan.ts";
import { overlayPlanFor, withDroppedRemotes } from "./plan.ts";

const network = (id: string, vni: number, more: Partial<ViewNetwork> = {}): ViewNetwork => ({
  id,
  name: id,
  subnet: "10.0.0.0/24",
  gateway: "10.0.0.1",
  vni,
  encrypted: false,
  ingress: false,
  ...more,
});

const endpoint = (taskId: string, networkId: string, addr: string, nodeId: string, more: Partial<ViewEndpoint> = {}): ViewEndpoint => ({
  key: `${taskId}/${networkId}`,
  taskId,
  serviceId: "svc",
  networkId,
  addr,
  mac: macForIpv4(addr),
  nodeId,
  nodeAddr: { node1: "192.168.100.11", node2: "192.168.100.12", node3: "192.168.100.13" }[nodeId] ?? "",
  ready: true,
  weight: 1,
  ...more,
});

function viewOf(networks: ViewNetwork[], endpoints: ViewEndpoint[]): NetworkView {
  const view = emptyView();
  for (const n of networks) view.networks.set(n.id, n);
  for (const e of endpoints) view.endpoints.set(e.key, e);
  return view;
}

describe("overlayPlanFor", () => {
  it("has every network of the view, by VNI, each with the endpoints of other nodes, by address", () => {
    const view = viewOf(
      [network("net-b", 4097), network("net-a", 4096)],
      [
        endpoint("t1", "net-a", "10.0.3.10/24", "node2"),
        endpoint("t2", "net-a", "10.0.3.9/24", "node3"),
        endpoint("t3", "net-a", "10.0.3.2/24", "node1"), // local: reached through the bridge
        endpoint("t4", "net-b", "10.0.4.2/24", "node2"),
        endpoint("t5", "net-gone", "10.0.5.2/24", "node2"), // a network the node does not hold
      ],
    );
    const plan = overlayPlanFor(view, "192.168.100.11", "node1", undefined);
    expect(plan).toEqual({
      localAddr: "192.168.100.11",
      networks: [
        {
          networkId: "net-a",
          vni: 4096,
          remotes: [
            { ip: "10.0.3.9", mac: "02:42:0a:00:03:09", nodeAddr: "192.168.100.13" },
            { ip: "10.0.3.10", mac: "02:42:0a:00:03:0a", nodeAddr: "192.168.100.12" },
          ],
        },
        { networkId: "net-b", vni: 4097, remotes: [{ ip: "10.0.4.2", mac: "02:42:0a:00:04:02", nodeAddr: "192.168.100.12" }] },
      ],
    });
    expect(() => checkOverlayPlan(plan)).not.toThrow();
  });

  it("keeps a network without remote endpoints: local tasks still need its bridge", () => {
    const plan = overlayPlanFor(viewOf([network("net-a", 4096)], [endpoint("t1", "net-a", "10.0.3.2/24", "node1")]), "192.168.100.11", "node1", undefined);
    expect(plan.networks).toEqual([{ networkId: "net-a", vni: 4096, remotes: [] }]);
  });

  it("builds no tunnel for an encrypted network while the node cannot encrypt, and one with room for ESP when it can", () => {
    const view = viewOf([network("net-a", 4096), network("secret", 4098, { encrypted: true })], [endpoint("t1", "secret", "10.0.6.2/24", "node2")]);
    expect(overlayPlanFor(view, "192.168.100.11", "node1", "no keys yet").networks.map((n) => n.networkId)).toEqual(["net-a"]);
    const plan = overlayPlanFor(view, "192.168.100.11", "node1", undefined);
    expect(plan.networks.map((n) => [n.networkId, n.mtu])).toEqual([["net-a", undefined], ["secret", 1410]]);
    expect(() => checkOverlayPlan(plan)).not.toThrow();
  });

  it("plans IPsec for the encrypted networks only: their VNIs, and the nodes of their remote endpoints", () => {
    const view = viewOf(
      [network("net-a", 4096), network("secret", 4098, { encrypted: true })],
      [endpoint("t1", "secret", "10.0.6.2/24", "node2"), endpoint("t2", "net-a", "10.0.3.2/24", "node3"), endpoint("t3", "secret", "10.0.6.3/24", "node1")],
    );
    const keys = { keys: [{ id: 1, secret: "ab".repeat(36) }], txKeyId: 1 };
    expect(ipsecPlanFor(view, "192.168.100.11", "node1", keys)).toEqual({ localAddr: "192.168.100.11", vnis: [4098], peers: ["192.168.100.12"], ...keys });
    expect(ipsecPlanFor(view, "192.168.100.11", "node1", undefined)).toMatchObject({ vnis: [4098], keys: [], txKeyId: 0 });
    expect(ipsecPlanFor(viewOf([network("net-a", 4096)], []), "192.168.100.11", "node1", keys)).toMatchObject({ vnis: [], peers: [] });
  });

  it("gives an address claimed twice to the ready endpoint, the same on every node, and skips endpoints without a node address", () => {
    const view = viewOf(
      [network("net-a", 4096)],
      [
        endpoint("old", "net-a", "10.0.3.7/24", "node2", { ready: false }),
        endpoint("new", "net-a", "10.0.3.7/24", "node3"),
        endpoint("lost", "net-a", "10.0.3.8/24", "node9"),
      ],
    );
    const plan = overlayPlanFor(view, "192.168.100.11", "node1", undefined);
    expect(plan.networks[0]!.remotes).toEqual([{ ip: "10.0.3.7", mac: "02:42:0a:00:03:07", nodeAddr: "192.168.100.13" }]);
    expect(() => checkOverlayPlan(plan)).not.toThrow();
  });

  it("is empty for an empty view", () => {
    expect(overlayPlanFor(emptyView(), "192.168.100.11", "node1", undefined)).toEqual({ localAddr: "192.168.100.11", networks: [] });
  });
});

describe("withDroppedRemotes", () => {
  const remote = (ip: string, nodeAddr: string) => ({ ip, mac: macForIpv4(ip), nodeAddr });
  const plan = (...remotes: ReturnType<typeof remote>[]) => ({ localAddr: "192.0.2.1", networks: [{ networkId: "n1", vni: 4097, remotes }] });

  it("keeps the remotes the next plan drops, until the load balancers no longer use them", () => {
    const prev = plan(remote("10.0.3.5", "192.0.2.2"), remote("10.0.3.6", "192.0.2.3"));
    const next = plan(remote("10.0.3.5", "192.0.2.2"), remote("10.0.3.9", "192.0.2.2"));
    expect(withDroppedRemotes(prev, next).networks[0]!.remotes.map((r) => r.ip)).toEqual(["10.0.3.5", "10.0.3.6", "10.0.3.9"]);
  });

  it("is the next plan itself when it drops nothing, and lets a new remote of the same address win", () => {
    const next = plan(remote("10.0.3.5", "192.0.2.3"));
    expect(withDroppedRemotes(plan(), next)).toBe(next);
    expect(withDroppedRemotes(plan(remote("10.0.3.5", "192.0.2.2")), next)).toBe(next);
  });
});
