import { describe, expect, it } from "vitest";
import { isTaskReady } from "./task-readiness.ts";

const CHECK = { test: ["CMD", "true"] };
const task = (state: string, health: string, healthcheck: { test: string[] } | null = null, desiredState = "running") => ({
  desiredState,
  status: { state, health },
  spec: { container: { healthcheck } },
});

describe("isTaskReady", () => {
  it("takes a task without a health check once it runs and is meant to", () => {
    expect(isTaskReady(task("running", ""))).toBe(true);
    expect(isTaskReady(task("starting", ""))).toBe(false);
    expect(isTaskReady(task("running", "", null, "shutdown"))).toBe(false);
  });

  it("takes a task with a health check only once it has passed it", () => {
    expect(isTaskReady(task("running", "", CHECK))).toBe(false);
    expect(isTaskReady(task("running", "starting", CHECK))).toBe(false);
    expect(isTaskReady(task("running", "unhealthy", CHECK))).toBe(false);
    expect(isTaskReady(task("running", "healthy", CHECK))).toBe(true);
  });

  it("counts an empty check as none, and reads the wire's missing fields as absent", () => {
    expect(isTaskReady(task("running", "", { test: [] }))).toBe(true);
    expect(isTaskReady({ desiredState: "running", status: { state: "running" }, spec: null })).toBe(true);
    expect(isTaskReady({ desiredState: "running", status: null })).toBe(false);
  });
});
