// Docker's restart policy: a task that ended by itself is replaced as its
// spec's restartPolicy says (condition, delay, max attempts in a window);
// tasks stopped by a scale-down are no restarts. Simulated agents end tasks
// as processes exiting: a command ["exit", "N"] exits N 100 ms after it runs.

import type { wire } from "@vipmesh/api";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, type Harness, serviceSpec, startHarness, tasksOf, waitFor, waitRunning } from "./harness.ts";

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
  const exits = (t: { spec: { container: { command: string[] } } }) =>
    t.spec.container.command[0] === "exit" ? { code: Number(t.spec.container.command[1]), afterMs: 100 } : undefined;
  for (const n of ["node1", "node2"]) await h.addAgent(n, { exits });
});
afterEach(async () => {
  await h.close();
});

const policy = (condition: string, extra: Record<string, number> = {}) => ({ condition, delayMs: 0, maxAttempts: 0, windowMs: 0, ...extra });

function exiting(name: string, code: number, restartPolicy: Record<string, unknown> | null, replicas = 1): wire.ServiceSpecInput {
  const spec = serviceSpec(name, { replicated: { replicas } });
  return { ...spec, taskTemplate: { container: { command: ["exit", String(code)] }, ...(restartPolicy ? { restartPolicy } : {}) } } as wire.ServiceSpecInput;
}

const ended = (t: wire.Task) => ["complete", "failed", "rejected"].includes(t.status!.state);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until the service has `n` tasks, all ended, and none comes for `quietMs`. */
async function settled(name: string, n: number, quietMs = 600): Promise<wire.Task[]> {
  await waitFor(`${n} ended tasks of ${name}`, async () => {
    const t = await tasksOf(h, name);
    return t.length >= n && t.every(ended);
  });
  await sleep(quietMs);
  const t = await tasksOf(h, name);
  expect(t.every(ended), "no task running after the policy said no more").toBe(true);
  return t;
}

describe("restart policy", () => {
  it("none: a task that exits is not replaced; service ps shows how it ended", async () => {
    await call(h.client, "createService", { spec: exiting("once", 1, policy("none")) });
    const tasks = await settled("once", 1);
    expect(tasks).toHaveLength(1);
    expect(tasks[0]!.status).toMatchObject({ state: "failed", err: "exit status 1" });
  });

  it("on-failure: a task that completes stays so; one that fails is restarted", async () => {
    await call(h.client, "createService", { spec: exiting("done", 0, policy("on-failure")) });
    const done = await settled("done", 1);
    expect(done.map((t) => t.status!.state)).toEqual(["complete"]);

    await call(h.client, "createService", { spec: exiting("crashing", 3, policy("on-failure", { maxAttempts: 2 })) });
    // the first task and two restarts, then the slot stays empty
    const crashed = await settled("crashing", 3);
    expect(crashed).toHaveLength(3);
    expect(crashed.every((t) => t.status!.state === "failed" && t.slot === 1)).toBe(true);
  });

  it("any: a task that completes is restarted too, at most maxAttempts times, each after delayMs", async () => {
    await call(h.client, "createService", { spec: exiting("loop", 0, policy("any", { maxAttempts: 2, delayMs: 300 })) });
    const tasks = await settled("loop", 3, 900);
    expect(tasks).toHaveLength(3);
    expect(tasks.every((t) => t.status!.state === "complete")).toBe(true);
    // each replacement began delayMs after the task before it ended
    const byCreation = [...tasks].sort((a, b) => (a.createdAt < b.createdAt ? -1 : 1));
    for (let i = 1; i < byCreation.length; i++) {
      const gap = Date.parse(byCreation[i]!.createdAt) - Date.parse(byCreation[i - 1]!.status!.timestamp);
      expect(gap).toBeGreaterThanOrEqual(290);
    }
  });

  it("maxAttempts counts per slot: each replica gets its own attempts", async () => {
    await call(h.client, "createService", { spec: exiting("pair", 1, policy("any", { maxAttempts: 1 }), 2) });
    const tasks = await settled("pair", 4);
    expect(tasks).toHaveLength(4);
    expect(tasks.filter((t) => t.slot === 1)).toHaveLength(2);
    expect(tasks.filter((t) => t.slot === 2)).toHaveLength(2);
  });

  it("a window: only restarts that began within it count", async () => {
    // each task runs 100 ms: with a 50 ms window, the restart before is always outside it
    await call(h.client, "createService", { spec: exiting("windowed", 1, policy("any", { maxAttempts: 1, windowMs: 50 })) });
    await waitFor("more restarts than maxAttempts, each outside the window of the one before", async () => (await tasksOf(h, "windowed")).length >= 4);
  });

  it("no policy: as before, a failed task is replaced after the manager's restart delay, without end", async () => {
    await call(h.client, "createService", { spec: exiting("legacy", 1, null) });
    await waitFor("restarted again and again", async () => (await tasksOf(h, "legacy")).filter(ended).length >= 3);
  });

  it("a scale-down is no restart: the policy's attempts are left for real ends", async () => {
    const spec = serviceSpec("web", { replicated: { replicas: 2 } }) as wire.ServiceSpecInput & { taskTemplate: Record<string, unknown> };
    spec.taskTemplate = { ...spec.taskTemplate, restartPolicy: policy("none") };
    const created = (await call(h.client, "createService", { spec })).service!;
    await waitRunning(h, "web", 2);
    const s = (await call(h.client, "inspectService", { service: "web" })).service!;
    await call(h.client, "updateService", { service: "web", version: s.version, spec: { ...s.spec!, replicated: { replicas: 1 } } });
    await waitRunning(h, "web", 1);
    // back to two: slot 2 (its task shut down, not ended by itself) gets a task despite condition none
    const s2 = (await call(h.client, "inspectService", { service: "web" })).service!;
    await call(h.client, "updateService", { service: "web", version: s2.version, spec: { ...s2.spec!, replicated: { replicas: 2 } } });
    const running = await waitRunning(h, "web", 2);
    expect(running.map((t) => t.slot).sort()).toEqual([1, 2]);
    expect(created.spec?.taskTemplate?.restartPolicy?.condition).toBe("none");
  });
});
