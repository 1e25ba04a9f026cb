// UpdateStatus as Docker shows it: updating while a rolling update goes,
// completed only once the last new task ran through the monitor period,
// paused (or rolled back) when a new task fails or ends early, with Docker's
// messages; a rollback completes after its own monitor.

import type { wire } from "@vipmesh/api";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, type Harness, serviceSpec, startHarness, tasksOf, waitFor, waitRunning } from "./harness.ts";

const MONITOR_MS = 300;

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
  // ["crash"] fails as it starts; ["exit", N] runs, then exits N after 100 ms (within the monitor)
  for (const n of ["node1", "node2"]) {
    await h.addAgent(n, {
      fails: (t) => (t.spec.container.command[0] === "crash" ? "exit status 1" : undefined),
      exits: (t) => (t.spec.container.command[0] === "exit" ? { code: Number(t.spec.container.command[1]), afterMs: 100 } : undefined),
    });
  }
});
afterEach(async () => {
  await h.close();
});

const inspect = async (): Promise<wire.Service> => (await call(h.client, "inspectService", { service: "web" })).service!;

async function setCommand(command: string[]): Promise<wire.Service> {
  const s = await inspect();
  const spec = { ...s.spec!, taskTemplate: { ...s.spec!.taskTemplate!, container: { ...s.spec!.taskTemplate!.container!, command } } };
  return (await call(h.client, "updateService", { service: "web", version: s.version, spec })).service!;
}

const config = (failureAction: string) => ({ parallelism: 1, delayMs: 0, monitorMs: MONITOR_MS, failureAction });

async function untilState(state: string): Promise<wire.Service> {
  return waitFor(`update status ${state}`, async () => {
    const s = await inspect();
    return s.updateStatus?.state === state ? s : undefined;
  });
}

describe("update status", () => {
  it("stays updating until the last new task ran through the monitor, then completed", async () => {
    await call(h.client, "createService", {
      spec: serviceSpec("web", { replicated: { replicas: 2 }, updateConfig: config("pause") }),
    });
    await waitRunning(h, "web", 2);
    const started = await setCommand(["vipmesh", "whoami", "--port", "8080"]);
    expect(started.updateStatus).toMatchObject({ state: "updating", message: "update in progress" });

    const running = await waitRunning(h, "web", 2);
    const lastRunningAt = Math.max(...running.map((t) => Date.parse(t.status!.timestamp)));
    // every task replaced and running: still updating while the last one is monitored
    const during = await inspect();
    if (Date.now() < lastRunningAt + MONITOR_MS - 50) expect(during.updateStatus?.state).toBe("updating");

    const done = await untilState("completed");
    expect(done.updateStatus?.message).toBe("update completed");
    expect(Date.parse(done.updateStatus!.completedAt)).toBeGreaterThanOrEqual(lastRunningAt + MONITOR_MS);
  });

  it("pauses when a new task ends early (even exiting 0), naming the task as Docker does", async () => {
    await call(h.client, "createService", {
      spec: serviceSpec("web", { replicated: { replicas: 2 }, updateConfig: config("pause") }),
    });
    await waitRunning(h, "web", 2);
    await setCommand(["exit", "0"]);
    const paused = await untilState("paused");
    const early = (await tasksOf(h, "web")).find((t) => t.spec?.container?.command?.[0] === "exit" && t.status?.state === "complete");
    expect(early).toBeDefined();
    expect(paused.updateStatus?.message).toBe(`update paused due to failure or early termination of task ${early!.id} (complete)`);
    // parallelism 1: the other slot still runs the old spec
    const stillOld = (await tasksOf(h, "web")).filter((t) => t.desiredState === "running" && t.spec?.container?.command?.[0] === "vipmesh");
    expect(stillOld).toHaveLength(1);
  });

  it("rolls back on failure: rollback_started with Docker's message, rollback_completed only after the rollback's monitor", async () => {
    await call(h.client, "createService", {
      spec: serviceSpec("web", { replicated: { replicas: 1 }, updateConfig: config("rollback"), rollbackConfig: config("pause") }),
    });
    await waitRunning(h, "web", 1);
    await setCommand(["crash"]);
    const rolling = await untilState("rollback_started");
    const crashed = (await tasksOf(h, "web")).find((t) => t.spec?.container?.command?.[0] === "crash")!;
    expect(rolling.updateStatus?.message).toBe(`update rolled back due to failure or early termination of task ${crashed.id} (failed: exit status 1)`);

    const [back] = await waitRunning(h, "web", 1);
    const runningAt = Date.parse(back!.status!.timestamp);
    const done = await untilState("rollback_completed");
    expect(Date.parse(done.updateStatus!.completedAt)).toBeGreaterThanOrEqual(runningAt + MONITOR_MS);
    expect(done.spec?.taskTemplate?.container?.command).toEqual(["vipmesh", "whoami"]);
  });

  it("a rollback someone asked for: manually requested, then rollback completed", async () => {
    await call(h.client, "createService", {
      spec: serviceSpec("web", { replicated: { replicas: 1 }, updateConfig: config("pause"), rollbackConfig: config("pause") }),
    });
    await waitRunning(h, "web", 1);
    await setCommand(["vipmesh", "whoami", "--port", "8080"]);
    await untilState("completed");
    const started = (await call(h.client, "rollbackService", { service: "web" })).service!;
    expect(started.updateStatus).toMatchObject({ state: "rollback_started", message: "manually requested rollback" });
    const done = await untilState("rollback_completed");
    expect(done.updateStatus?.message).toBe("rollback completed");
  });
});
