// The nftables dataplane in the kernel: one vipmesh table per sandbox, loaded
// whole the first time (and after any failure), then changed by element deltas
// against the plan last applied there (render.ts says why this layout).

import type { LbPlan } from "@vipmesh/core";
import { run } from "../../kernel/run.ts";
import { renderDelta, renderRuleset } from "./render.ts";

export class KernelNftables {
  /** What each sandbox's table holds, as far as this process applied it. */
  private readonly applied = new Map<string, LbPlan>();

  /** Brings a sandbox's table to `plan`: a delta when the last plan is known, else a full load. */
  async sync(sandbox: string, plan: LbPlan): Promise<void> {
    const prev = this.applied.get(sandbox);
    if (prev) {
      const delta = renderDelta(prev, plan);
      if (delta === "") return;
      try {
        await this.load(sandbox, delta);
        this.applied.set(sandbox, plan);
        return;
      } catch {
        this.applied.delete(sandbox); // the table is not what we thought: load it whole
      }
    }
    await this.load(sandbox, renderRuleset(plan));
    this.applied.set(sandbox, plan);
  }

  forget(sandbox: string): void {
    this.applied.delete(sandbox);
  }

  private async load(sandbox: string, script: string): Promise<void> {
    await run("ip", ["netns", "exec", sandbox, "nft", "-f", "-"], { input: script });
  }
}
