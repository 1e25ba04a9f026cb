// Placement by runtime and reservations (issue #22): an image task goes only
// to nodes whose agent has the container runtime, and a task reserving CPUs or
// memory only to nodes with room for it; until one has, the task is pending
// with the reason, and it is placed as soon as a node with the runtime
// registers or another task gives its room back. A real manager, simulated agents.

import { SIM_RESOURCES } from "@vipmesh/testing";
import { afterEach, describe, expect, it } from "vitest";
import { call, failure, type Harness, serviceSpec, startHarness, tasksOf, waitFor, waitRunning } from "./harness.ts";

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const imageService = (name: string, replicas: number, reservations?: { nanoCpus?: number; memoryBytes?: number }) =>
  serviceSpec(name, {
    taskTemplate: { container: { image: "nginx:1.25" }, ...(reservations ? { resources: { reservations } } : {}) },
    replicated: { replicas },
  });

const pendingReasons = (h: Harness, service: string, n: number) =>
  waitFor(`${n} pending tasks of ${service} with a reason`, async () => {
    const pending = (await tasksOf(h, service)).filter((t) => t.desiredState === "running" && t.status?.state === "pending" && t.status.err);
    return pending.length === n ? pending.map((t) => t.status!.err) : undefined;
  });

const nodeNamed = async (hostname: string) => (await call(h.client, "inspectNode", { node: hostname })).node!;

describe("placement", () => {
  it("an image task waits for a node with the container runtime, saying so, and goes to the first that registers", async () => {
    h = await startHarness();
    await h.addAgent("proc", { runtimes: ["process"] });
    await h.addAgent("old", { runtimes: [], resources: null });
    expect((await nodeNamed("proc")).description?.runtimes).toEqual(["process"]);
    // an agent that says nothing has the process runtime only, and offers nothing
    expect((await nodeNamed("old")).description).toMatchObject({ runtimes: ["process"], resources: null });

    await call(h.client, "createService", { spec: imageService("web", 2) });
    expect(await pendingReasons(h, "web", 2)).toEqual(Array(2).fill("no suitable node (2 nodes lack the container runtime)"));
    // a process service still goes to both
    await call(h.client, "createService", { spec: serviceSpec("who", { replicated: { replicas: 2 } }) });
    expect(new Set((await waitRunning(h, "who", 2)).map((t) => t.nodeId)).size).toBe(2);

    const ctr = await h.addAgent("ctr");
    expect((await nodeNamed("ctr")).description).toMatchObject({
      runtimes: ["process", "container"],
      resources: { nanoCpus: SIM_RESOURCES.nanoCpus, memoryBytes: SIM_RESOURCES.memoryBytes },
    });
    const placed = await waitRunning(h, "web", 2);
    expect(placed.map((t) => t.nodeId)).toEqual([ctr.nodeId, ctr.nodeId]);
  });

  it("a task reserving memory waits for room, saying how much is reserved, and is placed when another task gives its room back", async () => {
    h = await startHarness();
    const small = await h.addAgent("small", { resources: { nanoCpus: 2e9, memoryBytes: 1 * GiB } });
    await h.addAgent("silent", { resources: null });
    await call(h.client, "createService", { spec: imageService("a", 2, { memoryBytes: 512 * MiB }) });
    expect((await waitRunning(h, "a", 2)).map((t) => t.nodeId)).toEqual([small.nodeId, small.nodeId]);

    await call(h.client, "createService", { spec: imageService("b", 1, { memoryBytes: 512 * MiB, nanoCpus: 1e9 }) });
    expect(await pendingReasons(h, "b", 1)).toEqual([
      "no suitable node (1 node does not say its memory to reserve from, 1 node has not enough memory for 512 MiB: 1 GiB reserved of 1 GiB)",
    ]);

    // scaling a down to 1 gives 512 MiB back: b's task is placed, though nothing of b's changed
    const a = (await call(h.client, "inspectService", { service: "a" })).service!;
    await call(h.client, "updateService", { service: "a", version: a.version, spec: { ...a.spec!, replicated: { replicas: 1 } } });
    expect((await waitRunning(h, "b", 1)).map((t) => t.nodeId)).toEqual([small.nodeId]);
    // and the node is full again: a scaled back up waits
    const a2 = (await call(h.client, "inspectService", { service: "a" })).service!;
    await call(h.client, "updateService", { service: "a", version: a2.version, spec: { ...a2.spec!, replicated: { replicas: 2 } } });
    expect(await pendingReasons(h, "a", 1)).toEqual([
      "no suitable node (1 node does not say its memory to reserve from, 1 node has not enough memory for 512 MiB: 1 GiB reserved of 1 GiB)",
    ]);
  });

  it("a reservation above the limit is refused with the reason, and nothing is stored", async () => {
    h = await startHarness();
    const spec = serviceSpec("big", { taskTemplate: { container: { image: "nginx" }, resources: { limits: { memoryBytes: 32 * MiB }, reservations: { memoryBytes: 64 * MiB } } } });
    const f = await failure(call(h.client, "createService", { spec }));
    expect(f).toEqual({ code: "INVALID_ARGUMENT", details: expect.stringContaining("memory reservation: 64 MiB is above the memory limit of 32 MiB") });
    expect((await call(h.client, "listServices", {})).services).toEqual([]);
  });

  it("a node saying a runtime vipmesh does not know is refused (INVALID_ARGUMENT) and not stored", async () => {
    h = await startHarness();
    await expect(h.addAgent("odd", { runtimes: ["wasm"] })).rejects.toMatchObject({ details: 'runtime "wasm" is not one vipmesh knows: give process or container' });
    expect((await call(h.client, "listNodes", {})).nodes).toEqual([]);
  });
});
