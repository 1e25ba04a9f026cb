// Graceful drain with several managers. Each manager's dispatcher knows only
// the sessions it holds: when every one of them that saw a stopping task's
// service acknowledged a view without it (dispatcher.ts, startDrains), the
// manager puts DRAINS_PREFIX<taskId>/<managerId> on its lease instead of
// marking the task drained. The leader marks it drained once every reachable
// manager put its key (a manager that dies stops counting when its lease
// expires), and deletes a task's keys once it is drained or gone.
//
// A manager acknowledges the tasks already stopping when it is built (before
// its dispatcher starts): it holds no session yet, and the first view of any
// session it opens balances nothing to them.

import type { Etcd3 } from "@vipmesh/etcd";
import { isTerminal, type Task } from "@vipmesh/core";
import { inBackground } from "../background.ts";
import type { Cluster } from "../cluster.ts";
import type { ClusterStore } from "../store/cluster-store.ts";
import type { ManagerDirectory } from "./directory.ts";
import type { LeaderLoop } from "./leadership.ts";
import type { ManagerLease } from "./manager-lease.ts";
import { PrefixWatch } from "./prefix-watch.ts";

export const DRAINS_PREFIX = "/vipmesh/ha/drains/";

/** Whether a task still waits to be marked drained. */
const stopping = (t: Task | undefined): t is Task => t?.desiredState === "shutdown" && !t.drained && !isTerminal(t.status.state);

export class DrainAcks {
  private readonly watch: PrefixWatch;
  /** Tasks whose drain this manager's sessions acknowledged (put again on a new lease). */
  private readonly acked = new Set<string>();
  private leading = false;
  /** The leader's calls under way, by task: none made twice at once. */
  private readonly marking = new Set<string>();
  private readonly deleting = new Set<string>();
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly client: Etcd3,
    private readonly lease: ManagerLease,
    private readonly managerId: string,
    private readonly store: ClusterStore,
    private readonly cluster: Cluster,
    private readonly directory: ManagerDirectory,
  ) {
    this.watch = new PrefixWatch(client, DRAINS_PREFIX, () => this.check());
    for (const t of store.list("task")) if (stopping(t)) this.acked.add(t.id);
  }

  /** The leader's part, for whileLeading. */
  readonly leader: LeaderLoop = {
    start: () => {
      this.leading = true;
      this.check();
    },
    stop: () => {
      this.leading = false;
    },
  };

  async start(): Promise<void> {
    this.unsubscribe.push(
      this.store.subscribe((c) => {
        if (!c.changes.some((ch) => ch.kind === "task")) return;
        for (const id of this.acked) if (!stopping(this.store.task(id))) this.acked.delete(id);
        this.check();
      }),
      this.lease.onGranted(() => {
        for (const id of this.acked) this.put(id);
      }),
      this.directory.onChange(() => this.check()),
    );
    await this.watch.start();
    for (const id of this.acked) this.put(id); // those acknowledged before the lease was granted
  }

  stop(): void {
    for (const u of this.unsubscribe) u();
    this.watch.stop();
  }

  /** The dispatcher's hook: this manager's sessions no longer balance to these tasks. */
  drained(taskIds: string[]): void {
    for (const id of taskIds) {
      if (!stopping(this.store.task(id)) || this.acked.has(id)) continue;
      this.acked.add(id);
      this.put(id);
    }
  }

  private put(taskId: string): void {
    void this.lease.put(`${DRAINS_PREFIX}${taskId}/${this.managerId}`, "", () => this.acked.has(taskId));
  }

  /** The leader: marks drained the tasks every reachable manager acknowledged; deletes the keys of those done. */
  private check(): void {
    if (!this.leading) return;
    const byTask = new Map<string, Set<string>>();
    for (const key of this.watch.entries.keys()) {
      const [taskId, managerId] = key.split("/") as [string, string];
      byTask.set(taskId, (byTask.get(taskId) ?? new Set()).add(managerId));
    }
    const reachable = this.directory.list().filter((m) => m.reachable);
    const done: string[] = [];
    for (const [taskId, managers] of byTask) {
      if (!stopping(this.store.task(taskId))) this.deleteKeys(taskId);
      else if (!this.marking.has(taskId) && reachable.every((m) => managers.has(m.id))) done.push(taskId);
    }
    if (done.length === 0) return;
    for (const id of done) this.marking.add(id);
    inBackground(
      "marking tasks drained",
      this.cluster.markDrained(done).finally(() => {
        for (const id of done) this.marking.delete(id);
      }),
    );
  }

  private deleteKeys(taskId: string): void {
    if (this.deleting.has(taskId)) return;
    this.deleting.add(taskId);
    // a failure leaves them: the next check deletes them again
    void this.client
      .delete()
      .prefix(`${DRAINS_PREFIX}${taskId}/`)
      .exec()
      .catch(() => {})
      .finally(() => this.deleting.delete(taskId));
  }
}
