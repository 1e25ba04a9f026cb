// The nftables dataplane in the kernel: one vipmesh table per sandbox, loaded
// whole the first time (and after any failure, or when a delta would cost
// more), else changed by element deltas against the plan last applied there
// (render.ts says why this layout). When a
// VIP loses a backend, the sandbox's UDP flows still NAT-ed to it are flushed
// (lb/conntrack.ts says why).

import type { LbPlan } from "@vipmesh/core";
import { flushStaleUdpFlows, lostBackends } from "../conntrack.ts";
import { loadDeltaElseWhole } from "../../exec/nft.ts";
import type { LoadBalancer } from "../types.ts";
import { renderChange, renderRuleset } from "./render.ts";

export interface KernelNftablesOptions {
  /** Where a failed flush of stale UDP flows is said (the rules are in place all the same). */
  log?: (line: string) => void;
}

export class KernelNftables implements LoadBalancer {
  /** What the agent tells the manager it balances VIPs with. */
  readonly dataplane = "nftables" as const;
  /** What each sandbox's table holds, as far as this process applied it. */
  private readonly applied = new Map<string, LbPlan>();
  /** Sandboxes whose last sync lost a backend (or knew nothing before), with the plan before it. */
  private readonly lost = new Map<string, LbPlan | undefined>();

  constructor(private readonly o: KernelNftablesOptions = {}) {}

  /**
   * Brings a sandbox's table to `plan`: a delta when the last plan is known,
   * else a full load. Call flushStaleFlows after it, off the critical path
   * (the agent does once the sandbox's DNS is updated too).
   */
  async sync(sandbox: string, plan: LbPlan): Promise<void> {
    const prev = this.applied.get(sandbox);
    await this.apply(sandbox, plan, prev);
    // after a full load nothing says what was there before (an agent restart): every flow is looked at;
    // not flushed yet since an earlier loss: the plan before that one says which VIPs went
    if ((!prev || lostBackends(prev, plan)) && !this.lost.has(sandbox)) this.lost.set(sandbox, prev);
  }

  /** Deletes the UDP flows still NAT-ed to backends the last syncs took away (a failure is logged: the rules are right all the same). */
  async flushStaleFlows(sandbox: string): Promise<void> {
    const plan = this.applied.get(sandbox);
    if (!plan || !this.lost.has(sandbox)) return;
    const prev = this.lost.get(sandbox);
    this.lost.delete(sandbox);
    await flushStaleUdpFlows(sandbox, plan, prev).catch((e: unknown) =>
      this.o.log?.(`${sandbox}: stale UDP flows not flushed: ${e instanceof Error ? e.message : String(e)}`),
    );
  }

  forget(sandbox: string): void {
    this.applied.delete(sandbox);
    this.lost.delete(sandbox);
  }

  /** Nothing drains here: a backend that leaves is out of the map at once, its connections keep their NAT. */
  draining(): boolean {
    return false;
  }

  private async apply(sandbox: string, plan: LbPlan, prev: LbPlan | undefined): Promise<void> {
    const change = renderChange(prev, plan);
    this.applied.delete(sandbox); // until it is loaded, nothing is known
    await loadDeltaElseWhole(sandbox, change.full ? undefined : change.script, () => (change.full ? change.script : renderRuleset(plan)));
    this.applied.set(sandbox, plan);
  }
}
