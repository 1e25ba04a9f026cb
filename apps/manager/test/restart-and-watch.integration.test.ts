// The store survives a restart whole; Watch streams a snapshot, then every
// change; WatchServiceConvergence ends when tasks run and agents applied them.

import type { wire } from "@vipmesh/api";
import { afterEach, describe, expect, it } from "vitest";
import { call, everything, type Harness, serviceSpec, startHarness, waitFor, waitRunning } from "./harness.ts";

let h: Harness;
afterEach(async () => {
  await h.close();
});

describe("restart", () => {
  it("a manager restarted on the same data dir serves identical state and hands out nothing twice", async () => {
    h = await startHarness({ heartbeatPeriodMs: 5000 });
    for (const n of ["node1", "node2", "node3"]) await h.addAgent(n);
    await call(h.client, "createNetwork", { spec: { name: "collabnet", ipam: [{ subnet: "10.0.3.0/24" }], options: { encrypted: "" } } });
    await call(h.client, "createNetwork", { spec: { name: "backnet" } });
    await call(h.client, "createService", {
      spec: serviceSpec("collabweb", {
        networks: [{ target: "collabnet" }, { target: "backnet" }],
        endpointSpec: { ports: [{ targetPort: 80 }, { targetPort: 53, protocol: "udp", publishedPort: 5353 }] },
      }),
    });
    await call(h.client, "createService", { spec: serviceSpec("collab-box", { networks: [{ target: "collabnet" }], replicated: { replicas: 1 } }) });
    await waitRunning(h, "collabweb", 3);
    await waitRunning(h, "collab-box", 1);
    const before = await everything(h);

    const node1 = h.agents.find((a) => a.options.hostname === "node1")!;
    await h.restart();
    expect(await everything(h)).toEqual(before);

    // new allocations avoid everything allocated before the restart
    const taken = new Set<string>();
    for (const s of before.services) for (const v of s.endpoint!.virtualIps) taken.add(v.addr);
    for (const t of before.tasks) for (const a of t.networks) for (const addr of a.addresses) taken.add(addr);
    const next = (await call(h.client, "createService", {
      spec: serviceSpec("third", { networks: [{ target: "collabnet" }], replicated: { replicas: 0 }, endpointSpec: { ports: [{ targetPort: 80 }] } }),
    })).service!;
    expect(taken.has(next.endpoint!.virtualIps[0]!.addr)).toBe(false);
    // every VIP (collabweb has three: two networks and the mesh) has a mark of its own, and new ones are new
    const marks = before.services.flatMap((s) => s.endpoint!.virtualIps.map((v) => v.fwmark));
    expect(marks.length).toBe(4);
    expect(new Set(marks).size).toBe(4);
    expect(marks.every((m) => m >= 256)).toBe(true);
    expect(marks).not.toContain(next.endpoint!.virtualIps[0]!.fwmark);
    const usedPorts = before.services.flatMap((s) => s.endpoint!.ports.map((p) => p.publishedPort));
    expect(usedPorts).not.toContain(next.endpoint!.ports[0]!.publishedPort);
    const net = (await call(h.client, "createNetwork", { spec: { name: "third" } })).network!;
    expect(before.networks.map((n) => n.vni)).not.toContain(net.vni);
    expect(before.networks.map((n) => n.ipam!.subnet)).not.toContain(net.ipam!.subnet);
    const collabnet = before.networks.find((n) => n.spec?.name === "collabnet")!;
    expect(collabnet.encrypted).toBe(true);

    // agents that come back with their certificates keep their node IDs and get their tasks again
    const agent = await h.addAgent("node1", { identity: node1.identity });
    expect(agent.nodeId).toBe(before.nodes.find((n) => n.description?.hostname === "node1")!.id);
    const mine = before.tasks.filter((t) => t.nodeId === agent.nodeId && t.desiredState === "running").map((t) => t.id).sort();
    await waitFor("node1's tasks reassigned", () => mine.length > 0 && mine.every((id) => agent.view.tasks.has(id)));
  });
});

describe("watch", () => {
  it("sends the full snapshot first, then each change once, and stops on cancel", async () => {
    h = await startHarness();
    await call(h.client, "createNetwork", { spec: { name: "first" } });
    const messages: wire.WatchMessage[] = [];
    const stream = h.client.watch({});
    stream.on("data", (m: wire.WatchMessage) => messages.push(m));
    stream.on("error", () => {});
    await waitFor("snapshot", () => messages.length === 1);
    expect(messages[0]!.snapshot?.networks.map((n) => n.spec?.name)).toEqual(["ingress", "first"]);

    await call(h.client, "createNetwork", { spec: { name: "second" } });
    await call(h.client, "removeNetwork", { network: "first" });
    await waitFor("two changes", () => messages.length === 3);
    expect(messages[1]!.events.map((e) => [e.action, e.network?.spec?.name])).toEqual([["create", "second"]]);
    expect(messages[2]!.events.map((e) => [e.action, e.network?.spec?.name])).toEqual([["remove", "first"]]);
    expect(Number(messages[2]!.version)).toBeGreaterThan(Number(messages[1]!.version));
    stream.cancel();
  });

  it("reports convergence once every task runs and every affected agent acknowledged its view", async () => {
    h = await startHarness();
    const agents = [await h.addAgent("node1"), await h.addAgent("node2"), await h.addAgent("node3")];
    await call(h.client, "createNetwork", { spec: { name: "collabnet" } });
    const svc = (await call(h.client, "createService", { spec: serviceSpec("collabweb", { networks: [{ target: "collabnet" }] }) })).service!;
    const progress: wire.ServiceConvergence[] = [];
    await new Promise<void>((resolve, reject) => {
      const stream = h.client.watchServiceConvergence({ service: "collabweb" });
      stream.on("data", (p: wire.ServiceConvergence) => progress.push(p));
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    const last = progress.at(-1)!;
    expect(last).toMatchObject({ converged: true, desiredTasks: 3, runningTasks: 3, nodesTotal: 3, nodesAcked: 3 });
    expect(progress.slice(0, -1).every((p) => !p.converged)).toBe(true);
    // by then every agent really has the three endpoints
    for (const a of agents) expect([...a.view.endpoints.values()].filter((e) => e.serviceId === svc.id && e.ready)).toHaveLength(3);
  });

  it("does not report convergence while tasks cannot be placed", async () => {
    h = await startHarness();
    await call(h.client, "createService", { spec: serviceSpec("lonely") });
    const progress: wire.ServiceConvergence[] = [];
    const stream = h.client.watchServiceConvergence({ service: "lonely" });
    stream.on("data", (p: wire.ServiceConvergence) => progress.push(p));
    stream.on("error", () => {});
    await waitFor("a reason", () => progress.some((p) => p.message.includes("no suitable node")));
    expect(progress.every((p) => !p.converged)).toBe(true);
    stream.cancel();
  });
});
