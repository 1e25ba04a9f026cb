// Task status reports as they arrive from the sessions. After a fan-out many
// agents report at once: the first report of a turn commits at once (a lone
// one waits for nothing), the ones after it in the same turn commit together
// on the next: one store transaction (one fsync, one etcd round trip) for the
// lot rather than one each. Each report still stands or falls alone.

import type { Cluster } from "./cluster.ts";
import type { ClusterStore } from "./store/cluster-store.ts";

type Status = Parameters<Cluster["reportTaskStatus"]>[2];

interface Report {
  nodeId: string;
  taskId: string;
  status: Status;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class StatusReports {
  private waiting: Report[] | undefined;

  constructor(
    private readonly store: ClusterStore,
    private readonly cluster: Cluster,
  ) {}

  report(nodeId: string, taskId: string, status: Status): Promise<void> {
    if (!this.waiting) {
      this.waiting = [];
      setImmediate(() => this.commit());
      return this.cluster.reportTaskStatus(nodeId, taskId, status);
    }
    return new Promise((resolve, reject) => this.waiting!.push({ nodeId, taskId, status, resolve, reject }));
  }

  private commit(): void {
    const reports = this.waiting ?? [];
    this.waiting = undefined;
    this.store.together(() => {
      for (const r of reports) this.cluster.reportTaskStatus(r.nodeId, r.taskId, r.status).then(r.resolve, r.reject);
    });
  }
}
