// Rolling updates: tasks are replaced in batches of --update-parallelism,
// --update-delay apart; a failing new spec pauses the update or rolls it back.

import type { wire } from "@vipmesh/api";
import { taskConfinement } from "@vipmesh/core";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { call, type Harness, serviceSpec, startHarness, tasksOf, waitFor, waitRunning } from "./harness.ts";

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
  // tasks whose command is ["crash"] fail as soon as they start, like a bad image
  for (const n of ["node1", "node2", "node3"]) {
    await h.addAgent(n, { fails: (t) => (t.spec.container.command[0] === "crash" ? "exit status 1" : undefined) });
  }
});
afterEach(async () => {
  await h.close();
});

async function update(name: string, change: (spec: wire.ServiceSpec) => wire.ServiceSpec): Promise<wire.Service> {
  const s = (await call(h.client, "inspectService", { service: name })).service!;
  return (await call(h.client, "updateService", { service: name, version: s.version, spec: change(s.spec!) })).service!;
}

const withCommand = (command: string[]) => (spec: wire.ServiceSpec) => ({
  ...spec,
  taskTemplate: { ...spec.taskTemplate!, container: { ...spec.taskTemplate!.container!, command } },
});

/** Records, commit by commit, the tasks of one service as the Watch stream reports them. */
function recordTasks(serviceName: string) {
  const tasks = new Map<string, wire.Task>();
  const history: { at: number; created: wire.Task[]; tasks: wire.Task[] }[] = [];
  const stream = h.client.watch({});
  stream.on("data", (m: wire.WatchMessage) => {
    for (const t of m.snapshot?.tasks ?? []) if (t.serviceName === serviceName) tasks.set(t.id, t);
    const created: wire.Task[] = [];
    for (const e of m.events) {
      if (!e.task || e.task.serviceName !== serviceName) continue;
      if (e.action === "remove") tasks.delete(e.task.id);
      else tasks.set(e.task.id, e.task);
      if (e.action === "create") created.push(e.task);
    }
    history.push({ at: Date.now(), created, tasks: [...tasks.values()] });
  });
  stream.on("error", () => {});
  return { history, stop: () => stream.cancel() };
}

describe("rolling update", () => {
  it("replaces tasks in batches of --update-parallelism, each monitored, --update-delay apart", async () => {
    await call(h.client, "createService", {
      spec: serviceSpec("web", {
        replicated: { replicas: 6 },
        updateConfig: { parallelism: 2, delayMs: 150, monitorMs: 100, failureAction: "pause" },
      }),
    });
    await waitRunning(h, "web", 6);
    const rec = recordTasks("web");
    const updated = await update("web", withCommand(["vipmesh", "whoami", "--port", "8080"]));
    expect(updated.updateStatus?.state).toBe("updating");
    await waitFor("update completed", async () => (await call(h.client, "inspectService", { service: "web" })).service?.updateStatus?.state === "completed");
    rec.stop();

    const v = Number(updated.specVersion);
    const batches = rec.history.filter((c) => c.created.length > 0);
    expect(batches.map((b) => b.created.length)).toEqual([2, 2, 2]);
    expect(batches.flatMap((b) => b.created).every((t) => Number(t.specVersion) === v)).toBe(true);
    for (const b of batches) {
      // each batch replaces slots whose old task is stopped (stop-first)
      expect(b.created.map((t) => t.slot).sort()).toHaveLength(2);
    }
    // a batch starts only when the previous one has run for --update-monitor, and --update-delay
    // after that (on the manager's clock)
    const final = await waitRunning(h, "web", 6);
    const byId = new Map(final.map((t) => [t.id, t]));
    for (let i = 1; i < batches.length; i++) {
      const prevRunningAt = Math.max(...batches[i - 1]!.created.map((t) => Date.parse(byId.get(t.id)!.status!.timestamp)));
      const startedAt = Math.min(...batches[i]!.created.map((t) => Date.parse(t.createdAt)));
      expect(startedAt - prevRunningAt).toBeGreaterThanOrEqual(100 + 150);
    }
    for (const c of rec.history) {
      const inFlight = c.tasks.filter((t) => Number(t.specVersion) === v && t.desiredState === "running" && t.status?.state !== "running");
      expect(inFlight.length).toBeLessThanOrEqual(2);
    }
    expect(final.every((t) => t.spec?.container?.command?.includes("8080"))).toBe(true);
    expect(final.map((t) => t.slot).sort()).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("rolls back to the previous spec when a new task fails and the failure action is rollback", async () => {
    await call(h.client, "createService", {
      spec: serviceSpec("web", {
        replicated: { replicas: 3 },
        updateConfig: { parallelism: 1, monitorMs: 10, failureAction: "rollback" },
        rollbackConfig: { parallelism: 1, monitorMs: 10 },
      }),
    });
    const original = await waitRunning(h, "web", 3);
    await update("web", withCommand(["crash"]));
    const s = await waitFor("rollback completed", async () => {
      const svc = (await call(h.client, "inspectService", { service: "web" })).service!;
      return svc.updateStatus?.state === "rollback_completed" ? svc : undefined;
    });
    expect(s.spec?.taskTemplate?.container?.command).toEqual(["vipmesh", "whoami"]);
    expect(s.updateStatus?.message).toContain("failed");
    const running = await waitRunning(h, "web", 3);
    expect(running.every((t) => t.spec?.container?.command?.[0] === "vipmesh")).toBe(true);
    // only the first slot was tried with the bad spec (parallelism 1); the others never stopped
    const untouched = original.filter((t) => running.some((r) => r.id === t.id));
    expect(untouched).toHaveLength(2);
    const crashed = (await tasksOf(h, "web")).filter((t) => t.spec?.container?.command?.[0] === "crash");
    expect(crashed.length).toBeGreaterThanOrEqual(1);
    expect(crashed.every((t) => t.status?.state === "failed")).toBe(true);
  });

  it("pauses on failure by default, and the convergence stream says why", async () => {
    await call(h.client, "createService", {
      spec: serviceSpec("web", { replicated: { replicas: 2 }, rollbackConfig: { parallelism: 1, monitorMs: 10 } }),
    });
    await waitRunning(h, "web", 2);
    await update("web", withCommand(["crash"]));
    const ended = await new Promise<{ code?: number; details?: string }>((resolve) => {
      const stream = h.client.watchServiceConvergence({ service: "web" });
      stream.on("data", () => {});
      stream.on("error", resolve);
      stream.on("end", () => resolve({}));
    });
    expect(ended.code).toBe(9); // FAILED_PRECONDITION
    expect(ended.details).toContain("paused");
    expect(ended.details).toContain("exit status 1");
    const s = (await call(h.client, "inspectService", { service: "web" })).service!;
    expect(s.updateStatus?.state).toBe("paused");

    // service rollback brings the previous spec back with a rolling update
    await call(h.client, "rollbackService", { service: "web" });
    await waitFor("rollback completed", async () =>
      (await call(h.client, "inspectService", { service: "web" })).service?.updateStatus?.state === "rollback_completed",
    );
    const running = await waitRunning(h, "web", 2);
    expect(running.every((t) => t.spec?.container?.command?.[0] === "vipmesh")).toBe(true);
  });

  it("changes that do not touch the tasks (replicas, labels, ports of a published service) start no update", async () => {
    const port = { targetPort: 80, protocol: "tcp", publishMode: "ingress", publishedPort: 0, proxyProtocol: "" };
    await call(h.client, "createService", { spec: serviceSpec("web", { replicated: { replicas: 2 }, endpointSpec: { ports: [port] } }) });
    const before = await waitRunning(h, "web", 2);
    const s = await update("web", (spec) => ({
      ...spec,
      annotations: { ...spec.annotations!, labels: { tier: "front" } },
      endpointSpec: { ...spec.endpointSpec!, ports: [port, { ...port, targetPort: 443 }] },
    }));
    expect(s.updateStatus?.state).toBe("");
    expect(s.endpoint?.ports.map((p) => p.publishedPort).every((p) => p >= 30000)).toBe(true);
    const after = await waitRunning(h, "web", 2);
    expect(after.map((t) => t.id).sort()).toEqual(before.map((t) => t.id).sort());
  });

  it("publishing a service's first port through the mesh replaces its tasks, which join the ingress network", async () => {
    await call(h.client, "createService", { spec: serviceSpec("api", { replicated: { replicas: 1 } }) });
    const [before] = await waitRunning(h, "api", 1);
    const s = await update("api", (spec) => ({
      ...spec,
      endpointSpec: { ...spec.endpointSpec!, ports: [{ targetPort: 80, protocol: "tcp", publishMode: "ingress", publishedPort: 0, proxyProtocol: "" }] },
    }));
    const ingress = s.endpoint!.virtualIps.find((v) => v.addr.startsWith("10.255."));
    expect(ingress, "a VIP on the ingress network").toBeDefined();
    await waitFor("a task on the ingress network", async () => {
      const [t] = await waitRunning(h, "api", 1);
      return t!.id !== before!.id && t!.networks.some((a) => a.networkId === ingress!.networkId);
    });
  });

  it("a change of what confines the tasks (user, capabilities, limits) replaces them, their agents get it, and it is stored", async () => {
    await call(h.client, "createService", { spec: serviceSpec("web", { replicated: { replicas: 2 }, updateConfig: { parallelism: 0, monitorMs: 10 } }) });
    const before = await waitRunning(h, "web", 2);
    const s = await update("web", (spec) => ({
      ...spec,
      taskTemplate: {
        ...spec.taskTemplate!,
        container: { ...spec.taskTemplate!.container!, user: "1000:1000", capabilityAdd: ["net_admin"], capabilityDrop: ["ALL"] },
        resources: { limits: { nanoCpus: 500_000_000, memoryBytes: 64 * 1024 ** 2, pids: 64 }, reservations: null },
      },
    }));
    expect(s.updateStatus?.state).toBe("updating");
    expect(s.spec?.taskTemplate?.container).toMatchObject({ user: "1000:1000", capabilityAdd: ["CAP_NET_ADMIN"], capabilityDrop: ["ALL"] });

    const after = await waitRunning(h, "web", 2);
    expect(after.some((t) => before.some((b) => b.id === t.id))).toBe(false);
    // what the agents hold, decoded as a real agent's runtime reads it
    const held = h.agents.flatMap((a) => [...a.view.tasks.values()]).filter((t) => after.some((a) => a.id === t.id));
    expect(held).toHaveLength(2);
    for (const t of held) {
      expect(taskConfinement(t.spec)).toEqual({ user: "1000:1000", capabilities: ["CAP_NET_ADMIN"], pids: 64, memoryBytes: 64 * 1024 ** 2, nanoCpus: 500_000_000 });
    }

    await h.restart();
    const stored = (await call(h.client, "inspectService", { service: "web" })).service!;
    expect(stored.spec?.taskTemplate).toEqual(s.spec?.taskTemplate);
  });
});
