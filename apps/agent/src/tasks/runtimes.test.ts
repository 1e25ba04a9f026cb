import { effectiveCapabilities } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { FakeRuntime } from "./fake.ts";
import type { ExitReport, StartSpec } from "./runtime.ts";
import { TaskRuntimes } from "./runtimes.ts";

const spec = (taskId: string, image?: string): StartSpec => ({
  taskId,
  serviceName: "s",
  sandbox: `sb-${taskId}`,
  hostname: taskId,
  command: ["true"],
  env: [],
  container: { ...(image ? { image } : {}), command: [], env: [] },
  confinement: { user: "", capabilities: effectiveCapabilities(), pids: 10, memoryBytes: 0, nanoCpus: 0 },
});

describe("TaskRuntimes", () => {
  it("starts each task with the runtime its spec needs, and routes every later call to the one holding it", async () => {
    const process = new FakeRuntime();
    const container = new FakeRuntime();
    const runtimes = new TaskRuntimes({ process, container });
    const exits: ExitReport[] = [];
    runtimes.on("exit", (e) => exits.push(e));
    await runtimes.start(spec("p1"));
    await runtimes.start(spec("w1", "vipmesh/whoami:1")); // a known image runs as a process
    await runtimes.start(spec("c1", "nginx:1.27"));
    expect(process.known().sort()).toEqual(["p1", "w1"]);
    expect(container.known()).toEqual(["c1"]);
    expect(runtimes.known().sort()).toEqual(["c1", "p1", "w1"]);
    container.exit("c1", 3);
    expect(exits).toEqual([{ taskId: "c1", code: 3, signal: null }]);
    await runtimes.stop("p1");
    runtimes.forget("c1");
    expect(process.events).toEqual(["start p1", "start w1", "stop p1"]);
    expect(container.events).toEqual(["start c1", "forget c1"]);
  });

  it("adopts from both; prepares only containers' images", () => {
    const process = new FakeRuntime();
    const container = new FakeRuntime();
    process.leftBehind = [{ spec: spec("p1"), running: true }];
    container.leftBehind = [
      { spec: spec("c1"), running: true },
      { spec: spec("c2"), running: false },
    ];
    const runtimes = new TaskRuntimes({ process, container });
    expect(runtimes.adopt()).toEqual({ adopted: ["p1", "c1"], lost: ["c2"] });
    expect(runtimes.isRunning("c1") && runtimes.isRunning("p1")).toBe(true);
    container.setImage("nginx:1.27", { state: "preparing", message: "pulling" });
    expect(runtimes.prepare({ taskId: "x", container: { image: "nginx:1.27", command: [], env: [] } }, () => {})).toEqual({ state: "preparing", message: "pulling" });
    expect(runtimes.prepare({ taskId: "y", container: { command: ["true"], env: [] } }, () => {})).toEqual({ state: "ready" });
  });

  it("without containers, refuses image tasks saying why", async () => {
    const runtimes = new TaskRuntimes({ process: new FakeRuntime(), noContainers: "no containerd socket at /run/x.sock" });
    expect(runtimes.prepare({ taskId: "c1", container: { image: "nginx", command: [], env: [] } }, () => {})).toEqual({
      state: "failed",
      error: 'this node has no container runtime for image "nginx": no containerd socket at /run/x.sock',
    });
    await expect(runtimes.start(spec("c1", "nginx"))).rejects.toThrow('this node has no container runtime for image "nginx"');
  });
});
