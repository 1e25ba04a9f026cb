// Service logs relayed by the manager from simulated agents, over real gRPC:
// each agent answers log requests from the lines a test gives it.

import type * as grpc from "@grpc/grpc-js";
import { formatTaskLogLine, parseTaskLogLine, statusName, type wire } from "@vipmesh/api";
import type { SimAgent } from "@vipmesh/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, type Harness, serviceSpec, startHarness, tasksOf, waitFor, waitRunning } from "./harness.ts";

let h: Harness;
let agents: [SimAgent, SimAgent];
let tasks: wire.Task[];
beforeEach(async () => {
  h = await startHarness();
  agents = [await h.addAgent("node1"), await h.addAgent("node2")];
  await call(h.client, "createService", { spec: serviceSpec("collabweb", { replicated: { replicas: 3 } }) });
  tasks = (await waitRunning(h, "collabweb", 3)).sort((a, b) => a.slot - b.slot);
  for (const t of tasks) agentOf(t).logs.set(t.id, lines(t, 1, 5));
});
afterEach(async () => {
  await h.close();
});

const agentOf = (t: wire.Task) => agents.find((a) => a.nodeId === t.nodeId)!;
const lines = (t: wire.Task, from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `slot ${t.slot} line ${from + i}\n`).join("");

/** A ServiceLogs call and what it received so far, per task. */
function logs(req: { service: string; follow?: boolean; tail?: number; since?: string }) {
  const stream = h.client.serviceLogs(req) as grpc.ClientReadableStream<wire.LogChunk>;
  const chunks: wire.LogChunk[] = [];
  stream.on("data", (c: wire.LogChunk) => chunks.push(c));
  const ended = new Promise<{ status: string; details: string }>((resolve) => {
    stream.on("end", () => resolve({ status: "OK", details: "" }));
    stream.on("error", (err: grpc.ServiceError) => resolve({ status: statusName(err.code), details: err.details }));
  });
  /** The task's lines as received: task-log.ts's form (time, stream, text). */
  const parsed = (taskId: string) =>
    Buffer.concat(chunks.filter((c) => c.taskId === taskId).map((c) => c.data))
      .toString()
      .split(/(?<=\n)/)
      .filter((line) => line !== "")
      .map(parseTaskLogLine);
  /** Their text, a line each. */
  const text = (taskId: string) =>
    parsed(taskId)
      .map((l) => `${l.text}\n`)
      .join("");
  const errors = (taskId: string) => chunks.filter((c) => c.taskId === taskId && c.error).map((c) => c.error);
  return { stream, chunks, ended, parsed, text, errors };
}

describe("service logs", () => {
  it("relays each task's log, in order, from the node that runs it, then end", async () => {
    expect(new Set(tasks.map((t) => t.nodeId)).size).toBe(2);
    const l = logs({ service: "collabweb" });
    expect(await l.ended).toEqual({ status: "OK", details: "" });
    for (const t of tasks) {
      expect(l.text(t.id)).toBe(lines(t, 1, 5));
      expect(l.errors(t.id)).toEqual([]);
    }
    for (const c of l.chunks) {
      const t = tasks.find((x) => x.id === c.taskId)!;
      expect(c).toMatchObject({ slot: t.slot, nodeId: t.nodeId });
    }
  });

  it("keep the pieces of each task in order when tasks interleave", async () => {
    const [t1, t2] = tasks as [wire.Task, wire.Task];
    const l = logs({ service: "collabweb", follow: true });
    await waitFor("the logs so far", () => tasks.every((t) => l.text(t.id) === lines(t, 1, 5)));
    for (let i = 6; i <= 20; i++) {
      agentOf(t1).appendLog(t1.id, lines(t1, i, i));
      agentOf(t2).appendLog(t2.id, lines(t2, i, i));
    }
    await waitFor("the appended lines", () => l.text(t1.id) === lines(t1, 1, 20) && l.text(t2.id) === lines(t2, 1, 20));
    l.stream.cancel();
  });

  it("relay each line with its time and stream as the agent logged it", async () => {
    const t = tasks[0]!;
    const T = "2025-01-02T03:04:05.123456789Z";
    agentOf(t).logs.set(t.id, formatTaskLogLine(T, "stdout", "out") + formatTaskLogLine(T, "stderr", "err"));
    const l = logs({ service: "collabweb" });
    expect(await l.ended).toEqual({ status: "OK", details: "" });
    expect(l.parsed(t.id)).toEqual([
      { time: T, stream: "stdout", text: "out" },
      { time: T, stream: "stderr", text: "err" },
    ]);
    // plain lines the stand-in agent times as it sends them, as a real agent's shim would have
    expect(l.parsed(tasks[1]!.id).every((line) => line.time !== "" && line.stream === "stdout")).toBe(true);
  });

  it("send only the lines logged since a time, the agents filtering; a since that is no time is refused", async () => {
    const t = tasks[0]!;
    const at = (s: number) => `2025-01-02T03:04:0${s}.000000000Z`;
    agentOf(t).logs.set(t.id, [1, 2, 3].map((s) => formatTaskLogLine(at(s), "stdout", `at ${s}`)).join(""));
    const l = logs({ service: "collabweb", since: at(2) });
    expect((await l.ended).status).toBe("OK");
    expect(l.text(t.id)).toBe("at 2\nat 3\n");
    expect(await logs({ service: "collabweb", since: "yesterday" }).ended).toMatchObject({ status: "INVALID_ARGUMENT", details: expect.stringContaining("yesterday") });
  });

  it("send only the last lines of each task with tail", async () => {
    const l = logs({ service: "collabweb", tail: 2 });
    expect((await l.ended).status).toBe("OK");
    for (const t of tasks) expect(l.text(t.id)).toBe(lines(t, 4, 5));
  });

  it("follow new output until the caller cancels, and the agents stop following", async () => {
    const l = logs({ service: "collabweb", follow: true, tail: 1 });
    await waitFor("the last lines", () => tasks.every((t) => l.text(t.id) === lines(t, 5, 5)));
    const t = tasks[0]!;
    agentOf(t).appendLog(t.id, lines(t, 6, 7));
    await waitFor("the new lines", () => l.text(t.id) === lines(t, 5, 7));
    expect(agents.map((a) => a.logFollows)).toEqual([1, 1]);

    l.stream.cancel();
    expect((await l.ended).status).toBe("CANCELLED");
    await waitFor("agents that stopped following", () => agents.every((a) => a.logFollows === 0));
  });

  it("end a follow once no task's log can grow", async () => {
    const l = logs({ service: "collabweb", follow: true });
    await waitFor("the logs so far", () => tasks.every((t) => l.text(t.id) === lines(t, 1, 5)));
    for (const t of tasks) agentOf(t).endLog(t.id);
    expect(await l.ended).toEqual({ status: "OK", details: "" });
  });

  it("include tasks that ended and are still kept", async () => {
    const victim = tasks[0]!;
    agentOf(victim).report(victim.id, "failed", "exit status 1");
    await waitFor("the failed task replaced", async () => {
      const all = await tasksOf(h, "collabweb");
      return all.find((t) => t.id === victim.id)?.status?.state === "failed" && all.filter((t) => t.status?.state === "running").length === 3;
    });
    const l = logs({ service: "collabweb" });
    expect((await l.ended).status).toBe("OK");
    expect(l.text(victim.id)).toBe(lines(victim, 1, 5));
  });

  it("report the tasks of a node without a session instead of waiting for it", async () => {
    const [gone, kept] = agents;
    const goneTasks = tasks.filter((t) => t.nodeId === gone.nodeId);
    const keptTasks = tasks.filter((t) => t.nodeId === kept.nodeId);
    gone.stop();
    await waitFor("node1 down", async () => (await call(h.client, "inspectNode", { node: "node1" })).node?.status?.state === "down");

    const l = logs({ service: "collabweb", follow: true });
    await waitFor("node2's logs", () => keptTasks.every((t) => l.text(t.id) === lines(t, 1, 5)));
    for (const t of goneTasks) {
      expect(l.errors(t.id)).toEqual(["node node1 is not connected to the manager"]);
      expect(l.text(t.id)).toBe("");
    }
    for (const t of keptTasks) kept.endLog(t.id);
    // tasks that replaced node1's may be on node2 with no log yet
    for (const t of await tasksOf(h, "collabweb")) if (t.nodeId === kept.nodeId) kept.endLog(t.id);
    expect((await l.ended).status).toBe("OK");
  });

  it("end a task's part with an error when its node's session ends during a follow", async () => {
    const l = logs({ service: "collabweb", follow: true });
    await waitFor("the logs so far", () => tasks.every((t) => l.text(t.id) === lines(t, 1, 5)));
    const [gone, kept] = agents;
    gone.stop();
    const goneTasks = tasks.filter((t) => t.nodeId === gone.nodeId);
    await waitFor("errors for node1's tasks", () => goneTasks.every((t) => l.errors(t.id).length === 1));
    expect(l.errors(goneTasks[0]!.id)[0]).toBe("node node1 disconnected");
    for (const t of tasks) if (t.nodeId === kept.nodeId) kept.endLog(t.id);
    expect((await l.ended).status).toBe("OK");
  });

  it("answer NOT_FOUND for an unknown service", async () => {
    const l = logs({ service: "nosuch" });
    expect(await l.ended).toEqual({ status: "NOT_FOUND", details: 'service "nosuch" not found' });
  });
});
