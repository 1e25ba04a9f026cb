// The tombstones of removed nodes: a removed node's ID is refused from then
// on (its registration, its certificate), across manager restarts; its agent
// must join again with a token, as a new node. Node IDs are never reused.
// Read from the setting each time: the cluster and the CA share it, uncached.

import type { Settings, Tx } from "./cluster-store.ts";

/** The CA's list of revoked nodes before every removal was tombstoned: kept, so that an older database keeps its removals. */
const SETTING = "revoked-nodes";

export class RemovedNodes {
  constructor(private readonly settings: Settings) {}

  has(nodeId: string): boolean {
    return this.ids().includes(nodeId);
  }

  /** Tombstones a node as part of `tx`: committed with the removal, or not at all. */
  add(tx: Pick<Tx, "setting" | "setSetting">, nodeId: string): void {
    const ids = JSON.parse(tx.setting(SETTING) ?? "[]") as string[];
    if (!ids.includes(nodeId)) tx.setSetting(SETTING, JSON.stringify([...ids, nodeId]));
  }

  private ids(): string[] {
    return JSON.parse(this.settings.get(SETTING) ?? "[]") as string[];
  }
}
