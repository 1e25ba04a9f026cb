// The tombstones of removed nodes: a removed node's ID is refused from then
// on (its registration, its certificate), across manager restarts; its agent
// must join again with a token, as a new node. Node IDs are never reused.
// Read from the setting each time: the cluster and the CA share it, uncached.

import type { Tx } from "./cluster-store.ts";
import type { Settings } from "./sqlite.ts";

/** The CA's list of revoked nodes before every removal was tombstoned: kept, so that an older database keeps its removals. */
const SETTING = "revoked-nodes";

export class RemovedNodes {
  constructor(private readonly settings: Settings) {}

  has(nodeId: string): boolean {
    return this.ids().includes(nodeId);
  }

  /**
   * Tombstones a node as part of `tx`: written at once, taken back if the
   * transaction fails. A manager that dies before the commit keeps the node
   * out all the same (`vipmesh node rm` then finishes the removal).
   */
  add(tx: Pick<Tx, "onRollback">, nodeId: string): void {
    if (this.has(nodeId)) return;
    this.save([...this.ids(), nodeId]);
    tx.onRollback(() => this.save(this.ids().filter((id) => id !== nodeId)));
  }

  private ids(): string[] {
    return JSON.parse(this.settings.get(SETTING) ?? "[]") as string[];
  }

  private save(ids: string[]): void {
    this.settings.set(SETTING, JSON.stringify(ids));
  }
}
