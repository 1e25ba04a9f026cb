import type { Node } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import type { Cluster } from "./cluster.ts";
import { StatusReports } from "./status-reports.ts";
import { ClusterStore, type Commit } from "./store/cluster-store.ts";

describe("StatusReports", () => {
  /** A store without a backend, and a cluster whose report writes the node named by the task ID (or refuses "bad"). */
  async function setup() {
    const store = await ClusterStore.open(null);
    const commits: Commit[] = [];
    store.subscribe((c) => commits.push(c));
    const cluster = {
      reportTaskStatus: (_node: string, taskId: string) =>
        store.update((tx) => {
          if (taskId === "bad") throw new Error("refused");
          tx.put("node", { id: taskId, description: { hostname: taskId } } as Node);
        }),
    } as unknown as Cluster;
    return { reports: new StatusReports(store, cluster), commits };
  }

  it("commits the first report of a turn at once and the ones after it together, each standing or falling alone", async () => {
    const { reports, commits } = await setup();
    const first = reports.report("n1", "a", { state: "running" });
    expect(commits).toHaveLength(1); // a lone report waits for nothing
    const rest = [reports.report("n2", "b", { state: "running" }), reports.report("n3", "bad", { state: "running" }), reports.report("n4", "c", { state: "running" })];
    expect(commits).toHaveLength(1);
    await first;
    const settled = await Promise.allSettled(rest);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(commits).toHaveLength(2);
    expect(commits[1]!.changes.map((c) => c.object.id)).toEqual(["b", "c"]);
  });
});
