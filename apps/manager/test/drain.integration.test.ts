// Graceful drain: a task told to stop is marked drained only once every agent
// that sees its service has acknowledged a view without it — the agents stop
// it only then, so no agent is still sending it new connections.

import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, type Harness, serviceSpec, startHarness, tasksOf, waitFor, waitRunning } from "./harness.ts";

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.close();
});

describe("drain", () => {
  it("a task being stopped is drained only after every agent that sees its service applied the view without it", async () => {
    const [a, b] = [await h.addAgent("node1"), await h.addAgent("node2")];
    await call(h.client, "createNetwork", { spec: { name: "net" } });
    await call(h.client, "createService", { spec: serviceSpec("web", { networks: [{ target: "net" }], replicated: { replicas: 2 } }) });
    await waitRunning(h, "web", 2);

    b.holdAcks(); // node2 is slow to apply what it is sent
    const s = (await call(h.client, "inspectService", { service: "web" })).service!;
    await call(h.client, "updateService", { service: "web", version: s.version, spec: { ...s.spec!, replicated: { replicas: 1 } } });
    const stopping = await waitFor("slot 2 told to stop", async () => (await tasksOf(h, "web")).find((t) => t.slot === 2 && t.desiredState === "shutdown"));
    // node2 has received the view where the task gets no new connections (it keeps its overlay
    // entries while it drains), but not acknowledged it: not drained, still running
    await waitFor("node2 to receive the change", () => [...b.view.endpoints.values()].some((e) => e.taskId === stopping.id && !e.ready));
    await new Promise((r) => setTimeout(r, 100));
    const held = (await tasksOf(h, "web")).find((t) => t.id === stopping.id)!;
    expect(held.drained).toBe(false);
    expect(held.status?.state).toBe("running");

    b.releaseAcks();
    await waitFor("drained, then stopped", async () => {
      const t = (await tasksOf(h, "web")).find((x) => x.id === stopping.id)!;
      return t.drained && t.status?.state === "shutdown";
    });
    // stopped: gone from node2's view, overlay entries and all
    await waitFor("the stopped task out of node2's view", () => ![...b.view.endpoints.values()].some((e) => e.taskId === stopping.id));
    expect(a.nodeId).not.toBe("");
  });
});
