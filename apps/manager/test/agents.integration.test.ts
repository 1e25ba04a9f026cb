// Test agents speak the real dispatcher protocol: they register, heartbeat,
// receive their tasks and network views, and report task states.

import type { SimAgent } from "@vipmesh/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { restartGraceMs } from "../src/node-health.ts";
import { call, HEARTBEAT_MS, type Harness, liveTasks, serviceSpec, startHarness, tasksOf, waitFor, waitRunning } from "./harness.ts";

let h: Harness;
let agents: SimAgent[];
beforeEach(async () => {
  h = await startHarness();
  agents = [await h.addAgent("node1"), await h.addAgent("node2"), await h.addAgent("node3")];
  await call(h.client, "createNetwork", { spec: { name: "collabnet", ipam: [{ subnet: "10.0.3.0/24" }] } });
});
afterEach(async () => {
  await h.close();
});

const webOn = (network: string, replicas = 3, extra: object = {}) =>
  call(h.client, "createService", { spec: serviceSpec("collabweb", { networks: [{ target: network }], replicated: { replicas }, ...extra }) });

/** Endpoint addresses an agent's view holds for a service. */
const endpointAddrs = (a: SimAgent, serviceId: string) =>
  [...a.view.endpoints.values()].filter((e) => e.serviceId === serviceId).map((e) => e.addr).sort();

describe("agents", () => {
  it("receive their tasks and the network view of the networks they use", async () => {
    const net = (await call(h.client, "inspectNetwork", { network: "collabnet" })).network!;
    const svc = (await webOn("collabnet")).service!;
    await call(h.client, "createNetwork", { spec: { name: "othernet" } });
    const other = (await call(h.client, "createService", { spec: serviceSpec("elsewhere", { networks: [{ target: "othernet" }], replicated: { replicas: 1 } }) })).service!;
    const tasks = await waitRunning(h, "collabweb", 3);
    await waitRunning(h, "elsewhere", 1);
    expect(new Set(tasks.map((t) => t.nodeId)).size).toBe(3); // spread
    const taskAddrs = tasks.map((t) => t.networks[0]!.addresses[0]!).sort();

    for (const a of agents) {
      await waitFor(`${a.options.hostname} sees 3 ready endpoints`, () =>
        [...a.view.endpoints.values()].filter((e) => e.serviceId === svc.id && e.ready).length === 3,
      );
      const mine = [...a.view.tasks.values()].filter((t) => t.serviceId === svc.id);
      expect(mine).toHaveLength(1);
      expect(a.view.networks.get(net.id)).toMatchObject({ name: "collabnet", subnet: "10.0.3.0/24", vni: net.vni });
      expect(a.view.services.get(svc.id)?.virtualIps).toEqual([{ networkId: net.id, addr: "10.0.3.2/24", fwmark: svc.endpoint!.virtualIps[0]!.fwmark }]);
      expect(svc.endpoint!.virtualIps[0]!.fwmark).toBeGreaterThanOrEqual(256);
      expect(endpointAddrs(a, svc.id)).toEqual(taskAddrs);
      const peers = [...a.view.peers.keys()].sort();
      expect(peers).toEqual(agents.filter((b) => b !== a).map((b) => b.nodeId).sort());
      // the agent acknowledged what it applied
      expect(a.version).toBeGreaterThan(0);
    }
    // the node running `elsewhere` sees othernet too; the others see nothing of it
    const host = (await tasksOf(h, "elsewhere")).find((t) => t.status?.state === "running")!.nodeId;
    for (const a of agents) expect(a.view.services.has(other.id)).toBe(a.nodeId === host);
  });

  it("move the tasks of a node that stops heartbeating, and its endpoints leave every view", async () => {
    const svc = (await webOn("collabnet")).service!;
    const before = await waitRunning(h, "collabweb", 3);
    const [victim, ...survivors] = agents as [SimAgent, SimAgent, SimAgent];
    const victimTask = before.find((t) => t.nodeId === victim.nodeId)!;
    victim.freeze();

    await waitFor("node1 down", async () => (await call(h.client, "inspectNode", { node: "node1" })).node?.status?.state === "down");
    const after = await waitRunning(h, "collabweb", 3);
    expect(after.every((t) => t.nodeId !== victim.nodeId)).toBe(true);
    const orphaned = (await tasksOf(h, "collabweb")).find((t) => t.id === victimTask.id)!;
    expect(orphaned.status?.state).toBe("orphaned");
    expect(orphaned.status?.message).toContain("down");

    for (const a of survivors) {
      await waitFor(`${a.options.hostname}'s view without node1`, () => {
        const eps = [...a.view.endpoints.values()].filter((e) => e.serviceId === svc.id);
        return eps.length === 3 && eps.every((e) => e.nodeId !== victim.nodeId) && !a.view.peers.has(victim.nodeId);
      });
    }
  });

  it("after a manager restart, judge no node before the restart grace: none is marked down and no task moves until then", async () => {
    await webOn("collabnet");
    const before = await waitRunning(h, "collabweb", 3);
    await h.restart(); // the agents do not come back
    const restarted = Date.now();
    const states = async () => (await call(h.client, "listNodes", {})).nodes.map((n) => n.status?.state);
    // well past 3 missed heartbeats (0.3 s), still within the grace (7.3 s at 100 ms)
    await new Promise((r) => setTimeout(r, 2000));
    expect(await states()).toEqual(["ready", "ready", "ready"]);
    expect((await liveTasks(h, "collabweb")).map((t) => t.id).sort()).toEqual(before.map((t) => t.id).sort());
    // then the usual rule: nobody came back, every node is down
    await waitFor("every node down", async () => (await states()).every((s) => s === "down"), 15_000);
    expect(Date.now() - restarted).toBeGreaterThanOrEqual(restartGraceMs(HEARTBEAT_MS) - 100);
  });

  it("a node back from down keeps the task it still runs that nothing replaced yet; its pending replacement is dropped", async () => {
    await call(h.client, "createService", {
      spec: serviceSpec("pinned", { replicated: { replicas: 1 }, taskTemplate: { container: { command: ["x"] }, placement: { constraints: ["node.hostname==node1"] } } }),
    });
    const [kept] = await waitRunning(h, "pinned", 1);
    const [victim] = agents as [SimAgent];
    victim.freeze();
    await waitFor("node1 down", async () => (await call(h.client, "inspectNode", { node: "node1" })).node?.status?.state === "down");
    const replacement = await waitFor("a replacement pending (no other node may run it)", async () =>
      (await tasksOf(h, "pinned")).find((t) => t.id !== kept!.id && t.status?.state === "pending"),
    );
    expect((await tasksOf(h, "pinned")).find((t) => t.id === kept!.id)?.status?.state).toBe("orphaned");

    victim.stop();
    const back = await h.addAgent("node1", { identity: victim.identity }); // the same node, its agent reconnecting
    await waitFor("node1 ready", async () => (await call(h.client, "inspectNode", { node: "node1" })).node?.status?.state === "ready");
    const tasks = await tasksOf(h, "pinned");
    expect(tasks.find((t) => t.id === kept!.id)).toMatchObject({ desiredState: "running", status: { state: "running" } });
    expect(tasks.find((t) => t.id === replacement.id)).toMatchObject({ desiredState: "shutdown", status: { state: "shutdown" } });
    expect(back.view.tasks.get(kept!.id)?.desiredState).toBe("running");
    expect((await liveTasks(h, "pinned")).map((t) => t.id)).toEqual([kept!.id]);
  });

  it("run a global service once on every eligible node, also on nodes that join later", async () => {
    const svc = (await call(h.client, "createService", {
      spec: serviceSpec("monitor", { replicated: null, global: {}, networks: [{ target: "collabnet" }] }),
    })).service!;
    let tasks = await waitRunning(h, "monitor", 3);
    expect(tasks.map((t) => t.nodeId).sort()).toEqual(agents.map((a) => a.nodeId).sort());
    expect(tasks.every((t) => t.slot === 0)).toBe(true);
    const late = await h.addAgent("node4");
    tasks = await waitRunning(h, "monitor", 4);
    expect(tasks.filter((t) => t.nodeId === late.nodeId)).toHaveLength(1);
    expect(svc.spec?.mode).toBe("global");
  });

  it("keep tasks off nodes that a constraint excludes", async () => {
    await call(h.client, "createService", {
      spec: serviceSpec("picky", {
        replicated: { replicas: 4 },
        taskTemplate: { container: { command: ["x"] }, placement: { constraints: ["node.hostname!=node1"] } },
      }),
    });
    const tasks = await waitRunning(h, "picky", 4);
    const node1 = agents[0]!.nodeId;
    expect(tasks.some((t) => t.nodeId === node1)).toBe(false);
    expect(new Set(tasks.map((t) => t.nodeId)).size).toBe(2);

    await h.addAgent("node5", { labels: { zone: "a" } });
    await call(h.client, "createService", {
      spec: serviceSpec("zoned", {
        replicated: { replicas: 2 },
        taskTemplate: { container: { command: ["x"] }, placement: { constraints: ["engine.labels.zone==a"] } },
      }),
    });
    const zoned = await waitRunning(h, "zoned", 2);
    const node5 = (await call(h.client, "inspectNode", { node: "node5" })).node!.id;
    expect(zoned.every((t) => t.nodeId === node5)).toBe(true);
  });

  it("drain: a drained node gets no tasks and its tasks move", async () => {
    await webOn("collabnet", 3);
    await waitRunning(h, "collabweb", 3);
    const node = (await call(h.client, "inspectNode", { node: "node2" })).node!;
    await call(h.client, "updateNode", { node: "node2", version: node.version, spec: { ...node.spec, availability: "drain" } });
    const tasks = await waitRunning(h, "collabweb", 3);
    expect(tasks.some((t) => t.nodeId === node.id)).toBe(false);
    await waitFor("node2's view empty of tasks", () => agents[1]!.view.tasks.size === 0);
    await call(h.client, "createService", { spec: serviceSpec("later", { replicated: { replicas: 4 } }) });
    expect((await waitRunning(h, "later", 4)).some((t) => t.nodeId === node.id)).toBe(false);
  });

  it("scale down removes the highest slots; a failed task is replaced in its slot", async () => {
    const svc = (await webOn("collabnet", 5)).service!;
    await waitRunning(h, "collabweb", 5);
    const current = (await call(h.client, "inspectService", { service: "collabweb" })).service!;
    await call(h.client, "updateService", {
      service: "collabweb",
      version: current.version,
      spec: { ...current.spec!, replicated: { replicas: 2 } },
    });
    const kept = await waitRunning(h, "collabweb", 2);
    expect(kept.map((t) => t.slot).sort()).toEqual([1, 2]);
    // nodes still running a task see the 2 endpoints; a node left with none drops the network from its view
    for (const a of agents) {
      const runsOne = kept.some((t) => t.nodeId === a.nodeId);
      await waitFor(`${a.options.hostname}'s view`, () =>
        runsOne ? endpointAddrs(a, svc.id).length === 2 : !a.view.networks.has(svc.spec!.networks[0]!.target) && endpointAddrs(a, svc.id).length === 0,
      );
    }

    const victim = kept.find((t) => t.slot === 2)!;
    const owner = agents.find((a) => a.nodeId === victim.nodeId)!;
    owner.report(victim.id, "failed", "exit status 137");
    const replaced = await waitFor("slot 2 replaced", async () =>
      (await liveTasks(h, "collabweb")).find((t) => t.slot === 2 && t.id !== victim.id),
    );
    expect(replaced.networks[0]!.addresses[0]).not.toBe(victim.networks[0]!.addresses[0]);
    const all = await tasksOf(h, "collabweb");
    expect(all.find((t) => t.id === victim.id)).toMatchObject({ desiredState: "shutdown", status: { state: "failed", err: "exit status 137" } });
    // as `service ps` shows it: only the tasks that run are wanted running, not those scaled down, nor the one that failed
    const wanted = all.filter((t) => t.desiredState === "running").map((t) => t.id);
    expect(wanted.sort()).toEqual([kept.find((t) => t.slot === 1)!.id, replaced.id].sort());
  });

  it("a network out of addresses keeps the extra tasks pending with the reason, and other services carry on", async () => {
    await call(h.client, "createNetwork", { spec: { name: "tiny", ipam: [{ subnet: "10.9.0.0/29" }] } }); // 5 usable
    await call(h.client, "createService", { spec: serviceSpec("crowd", { networks: [{ target: "tiny" }], replicated: { replicas: 6 } }) });
    await call(h.client, "createService", { spec: serviceSpec("bystander", { networks: [{ target: "collabnet" }], replicated: { replicas: 2 } }) });
    await waitRunning(h, "bystander", 2);
    const tasks = await waitFor("4 running, 2 pending", async () => {
      const all = await tasksOf(h, "crowd");
      const running = all.filter((t) => t.status?.state === "running");
      return running.length === 4 && all.filter((t) => t.status?.state === "pending").length === 2 ? all : undefined;
    });
    for (const t of tasks.filter((t) => t.status?.state === "pending")) {
      expect(t.status?.err).toContain("no free address");
      expect(t.status?.err).toContain("tiny");
      expect(t.nodeId).toBe("");
    }
    // scaling down frees addresses, and nothing is left pending
    const s = (await call(h.client, "inspectService", { service: "crowd" })).service!;
    await call(h.client, "updateService", { service: "crowd", version: s.version, spec: { ...s.spec!, replicated: { replicas: 4 } } });
    await waitRunning(h, "crowd", 4);
    expect((await tasksOf(h, "crowd")).filter((t) => t.status?.state === "pending")).toHaveLength(0);
  });
});
