// Agents say which dataplane balances their VIPs when they register, and the
// manager refuses (INVALID_ARGUMENT, nothing stored) a load-balancing setting
// that a registered node's dataplane cannot honour, rather than let that node
// ignore it. Client-IP affinity reaches the agents' views.

import { SimAgent } from "@vipmesh/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, everything, failure, type Harness, serviceSpec, startHarness, waitFor, waitRunning } from "./harness.ts";

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
  await call(h.client, "createNetwork", { spec: { name: "appnet", ipam: [{ subnet: "10.0.3.0/24" }] } });
});
afterEach(async () => {
  await h.close();
});

const spec = (name: string, endpointSpec: object, replicas = 0) =>
  serviceSpec(name, { networks: [{ target: "appnet" }], replicated: { replicas }, endpointSpec });

describe("node dataplanes", () => {
  it("are what agents say at Register, nftables for one that says nothing; an unknown one is refused", async () => {
    await h.addAgent("node-1", { dataplane: "nftables" });
    await h.addAgent("node-2"); // an agent from before agents said
    await h.addAgent("node-3", { dataplane: "ipvs" });
    const { nodes } = await call(h.client, "listNodes", {});
    expect(nodes.map((n) => [n.description?.hostname, n.description?.dataplane])).toEqual([
      ["node-1", "nftables"],
      ["node-2", "nftables"],
      ["node-3", "ipvs"],
    ]);
    const before = await everything(h);
    const stranger = new SimAgent(h.address, { hostname: "node-4", addr: "192.0.2.254", dataplane: "ebpf", token: h.token });
    const f = await failure(stranger.start());
    stranger.stop();
    expect(f.code).toBe("INVALID_ARGUMENT");
    expect(f.details).toContain('dataplane "ebpf" is unknown');
    expect(await everything(h)).toEqual(before);
  });

  it("refuse `--lb-scheduler lc` on nftables nodes: INVALID_ARGUMENT naming them, and nothing is stored", async () => {
    await h.addAgent("node-1", { dataplane: "nftables" });
    await h.addAgent("node-2", { dataplane: "nftables" });
    const web = (await call(h.client, "createService", { spec: spec("web", { lbScheduler: "rr" }) })).service!;
    const before = await everything(h);

    const created = await failure(call(h.client, "createService", { spec: spec("api", { lbScheduler: "lc" }) }));
    expect(created.code).toBe("INVALID_ARGUMENT");
    expect(created.details).toContain('lb scheduler "lc" cannot be honoured by nodes node-1, node-2 (dataplane nftables, which honours schedulers random, rr;');
    expect(created.details).toContain("use random or rr");

    const updated = await failure(call(h.client, "updateService", { service: web.id, version: web.version, spec: spec("web", { lbScheduler: "lc" }) }));
    expect(updated.code).toBe("INVALID_ARGUMENT");
    expect(updated.details).toContain("node-1, node-2");
    expect(await everything(h)).toEqual(before);
  });

  it("hold specs to nftables while no node has registered", async () => {
    const before = await everything(h);
    const f = await failure(call(h.client, "createService", { spec: spec("api", { lbScheduler: "lc" }) }));
    expect(f.code).toBe("INVALID_ARGUMENT");
    expect(f.details).toContain("dataplane nftables, which applies while no node has registered");
    expect(await everything(h)).toEqual(before);
    await call(h.client, "createService", { spec: spec("api", { lbScheduler: "rr", lbAffinity: "client-ip" }) });
  });

  it("name only the nodes that cannot; an update that keeps the scheduler is not refused for a node that joined since", async () => {
    await h.addAgent("node-1", { dataplane: "nftables" });
    const web = (await call(h.client, "createService", { spec: spec("web", { lbScheduler: "random" }) })).service!;
    await h.addAgent("vs-1", { dataplane: "ipvs" });
    const f = await failure(call(h.client, "createService", { spec: spec("api", { lbScheduler: "random" }) }));
    expect(f.code).toBe("INVALID_ARGUMENT");
    expect(f.details).toContain("node vs-1 (dataplane ipvs");
    expect(f.details).not.toContain("node-1");
    const scaled = await call(h.client, "updateService", { service: web.id, version: web.version, spec: spec("web", { lbScheduler: "random" }, 2) });
    expect(scaled.service?.spec?.replicated?.replicas).toBe(2);
  });
});

describe("client-IP affinity", () => {
  it("is stored with its default timeout and reaches the views of the agents that balance the VIP", async () => {
    const agent = await h.addAgent("node-1", { dataplane: "nftables" });
    const web = (await call(h.client, "createService", { spec: spec("web", { lbAffinity: "client-ip" }, 1) })).service!;
    expect(web.spec?.endpointSpec).toMatchObject({ lbAffinity: "client-ip", lbAffinityTimeoutS: 10800 });
    await waitRunning(h, "web", 1);
    await waitFor("the agent's view of web", () => agent.view.services.get(web.id));
    expect(agent.view.services.get(web.id)).toMatchObject({ lbAffinity: "client-ip", lbAffinityTimeoutS: 10800 });

    const current = (await call(h.client, "inspectService", { service: "web" })).service!;
    await call(h.client, "updateService", { service: web.id, version: current.version, spec: spec("web", { lbAffinity: "none" }, 1) });
    await waitFor("affinity off in the view", () => agent.view.services.get(web.id)?.lbAffinity !== "client-ip");
    // the codec leaves out what the wire sends as its defaults ("", 0): no affinity at all
    const off = agent.view.services.get(web.id)!;
    expect([off.lbAffinity, off.lbAffinityTimeoutS]).toEqual([undefined, undefined]);
  });

  it("refuses a timeout out of range, or one without affinity, and stores nothing", async () => {
    const before = await everything(h);
    for (const [endpointSpec, mentions] of [
      [{ lbAffinity: "client-ip", lbAffinityTimeoutS: 86401 }, "86401"],
      [{ lbAffinityTimeoutS: 60 }, "--lb-affinity client-ip"],
      [{ lbAffinity: "sticky" }, '"sticky"'],
    ] as const) {
      const f = await failure(call(h.client, "createService", { spec: spec("api", endpointSpec) }));
      expect(f.code).toBe("INVALID_ARGUMENT");
      expect(f.details).toContain(mentions);
    }
    expect(await everything(h)).toEqual(before);
  });
});
