import { type HealthCheck, type Service, type Task, type TaskHealth, normalizeServiceSpec } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { serviceConvergence } from "./convergence.ts";
import type { Dispatcher } from "./dispatcher.ts";
import type { ClusterStore } from "./store/cluster-store.ts";

const meta = (id: string) => ({ id, version: 1, createdAt: "", updatedAt: "" });
const CHECK: HealthCheck = { test: ["CMD", "true"], intervalMs: 1000, timeoutMs: 1000, retries: 3, startPeriodMs: 0 };

/** One replica of `web`, with a health check or without, and its task running with `health`. */
function oneRunningTask(healthcheck: HealthCheck | null, health: TaskHealth): { service: Service; task: Task } {
  const spec = normalizeServiceSpec({
    annotations: { name: "web" },
    taskTemplate: { container: { command: ["run"], healthcheck } },
    replicated: { replicas: 1 },
  });
  const service: Service = {
    ...meta("s1"),
    spec,
    endpoint: { spec: spec.endpointSpec, ports: [], virtualIps: [] },
    updateStatus: { state: "completed", startedAt: "", completedAt: "", message: "" },
    specVersion: 1,
  };
  const task: Task = {
    ...meta("t1"),
    serviceId: "s1",
    serviceName: "web",
    slot: 1,
    nodeId: "n1",
    specVersion: 1,
    spec: spec.taskTemplate,
    desiredState: "running",
    status: { state: "running", timestamp: "", message: "", err: "", health },
    networks: [],
  };
  return { service, task };
}

const converged = ({ service, task }: { service: Service; task: Task }) => {
  const store = { tasksOfService: () => [task], list: () => [] } as unknown as ClusterStore;
  const dispatcher = { acknowledgement: () => ({ total: 1, acked: 1 }) } as unknown as Dispatcher;
  return serviceConvergence(store, dispatcher, service);
};

describe("serviceConvergence", () => {
  it("counts a running task with a health check only once it is healthy", () => {
    for (const health of ["", "starting"] as const) {
      expect(converged(oneRunningTask(CHECK, health))).toMatchObject({ runningTasks: 0, converged: false });
    }
    expect(converged(oneRunningTask(CHECK, "healthy"))).toMatchObject({ runningTasks: 1, converged: true });
  });

  it("counts a running task without a health check at once", () => {
    expect(converged(oneRunningTask(null, ""))).toMatchObject({ runningTasks: 1, converged: true });
  });
});
