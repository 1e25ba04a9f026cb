// What the agent asks of a VIP dataplane (nftables/ or ipvs/): the same
// user-visible behaviour for VIPs, published ports and drain, whichever runs.

import type { LbPlan } from "@vipmesh/core";

export interface LoadBalancer {
  /** What the agent tells the manager it balances VIPs with. */
  readonly dataplane: "nftables" | "ipvs";
  /**
   * Brings a sandbox to `plan`. `forwards`: the sandbox balances traffic it
   * forwards (the ingress sandbox), not only its own processes'.
   */
  sync(sandbox: string, plan: LbPlan, forwards?: boolean): Promise<void>;
  /** After sync, off the critical path: UDP flows still going to backends that left. */
  flushStaleFlows(sandbox: string): Promise<void>;
  forget(sandbox: string): void;
  /** Backends still draining somewhere (the agent syncs again soon to finish them). */
  draining(): boolean;
}
