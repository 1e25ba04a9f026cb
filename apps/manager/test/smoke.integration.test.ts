import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, type Harness, serviceSpec, startHarness, waitRunning } from "./harness.ts";

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

describe("smoke", () => {
  it("places three replicas on three agents", async () => {
    await h.addAgent("node1");
    await h.addAgent("node2");
    await h.addAgent("node3");
    const net = await call(h.client, "createNetwork", { spec: { name: "collabnet", driver: "overlay", ipam: [{ subnet: "10.0.3.0/24" }] } });
    expect(net.network?.ipam?.gateway).toBe("10.0.3.1");
    const svc = await call(h.client, "createService", { spec: serviceSpec("collabweb", { networks: [{ target: "collabnet" }] }) });
    expect(svc.service?.endpoint?.virtualIps?.[0]?.addr).toBe("10.0.3.2/24");
    const tasks = await waitRunning(h, "collabweb", 3);
    expect(new Set(tasks.map((t) => t.nodeId)).size).toBe(3);
  });
});
