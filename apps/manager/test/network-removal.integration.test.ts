// Removal that finishes: `docker stack rm` removes services, then networks at
// once. The network removal must not fail for the removed services' tasks
// still draining on their nodes; its VNI and subnet are free again after.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, type Harness, serviceSpec, startHarness, waitFor, waitRunning } from "./harness.ts";

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
  await h.addAgent("node1");
  await h.addAgent("node2");
});
afterEach(async () => {
  await h.close();
});

const netSpec = { name: "demo_appnet", driver: "overlay", ipam: [{ subnet: "10.0.9.0/24" }] };

describe("network removal", () => {
  it("service rm then network rm at once both succeed; the network is gone everywhere and its VNI and subnet are reusable", async () => {
    const net = (await call(h.client, "createNetwork", { spec: netSpec })).network!;
    await call(h.client, "createService", { spec: serviceSpec("demo_web", { networks: [{ target: "demo_appnet" }] }) });
    await call(h.client, "createService", { spec: serviceSpec("demo_api", { replicated: { replicas: 2 }, networks: [{ target: "demo_appnet" }] }) });
    await waitRunning(h, "demo_web", 3);
    await waitRunning(h, "demo_api", 2);

    // as stack rm: each call as soon as the one before answered, nothing waited for
    await call(h.client, "removeService", { service: "demo_web" });
    await call(h.client, "removeService", { service: "demo_api" });
    await call(h.client, "removeNetwork", { network: "demo_appnet" });

    expect((await call(h.client, "listNetworks", {})).networks.map((n) => n.spec?.name)).not.toContain("demo_appnet");
    expect((await call(h.client, "listTasks", {})).tasks).toHaveLength(0);
    await waitFor("agents hold neither the network nor its tasks", async () =>
      h.agents.every((a) => !a.view.networks.has(net.id) && a.view.tasks.size === 0),
    );

    // the same subnet is free again (the next VNI is handed out, not the one just freed: agents may still drain on it)
    const again = (await call(h.client, "createNetwork", { spec: netSpec })).network!;
    expect(again.ipam?.subnet).toBe("10.0.9.0/24");
    expect(again.vni).toBeGreaterThan(0);
  });

  it("network rm right after a service left the network waits for its old tasks to stop, then succeeds", async () => {
    await call(h.client, "createNetwork", { spec: netSpec });
    await call(h.client, "createService", {
      spec: serviceSpec("web", { replicated: { replicas: 2 }, networks: [{ target: "demo_appnet" }], updateConfig: { parallelism: 0, monitorMs: 10 } }),
    });
    await waitRunning(h, "web", 2);
    const s = (await call(h.client, "inspectService", { service: "web" })).service!;
    await call(h.client, "updateService", { service: "web", version: s.version, spec: { ...s.spec!, networks: [] } });
    // at once: the old tasks are still attached, being stopped
    await call(h.client, "removeNetwork", { network: "demo_appnet" });
    expect((await call(h.client, "listNetworks", {})).networks.map((n) => n.spec?.name)).not.toContain("demo_appnet");
  });
});
