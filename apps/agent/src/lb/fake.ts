// An in-memory VIP dataplane for unit tests of the agent: keeps each
// sandbox's LB plan as it was last synced and dumps them as sorted text.

import { canonicalLbPlan, type LbPlan } from "@vipmesh/core";
import type { LoadBalancer } from "./types.ts";

export class FakeLoadBalancer implements LoadBalancer {
  readonly dataplane = "nftables" as const;
  private readonly plans = new Map<string, { plan: LbPlan; forwards: boolean }>();

  async sync(sandbox: string, plan: LbPlan, forwards = false): Promise<void> {
    this.plans.set(sandbox, { plan: canonicalLbPlan(structuredClone(plan)), forwards });
  }

  async flushStaleFlows(): Promise<void> {}

  forget(sandbox: string): void {
    this.plans.delete(sandbox);
  }

  draining(): boolean {
    return false;
  }

  /** Where a new connection to `vip` from `sandbox` may go: the addresses with weight > 0. */
  backendsOf(sandbox: string, vip: string): string[] {
    const svc = this.plans.get(sandbox)?.plan.services.find((s) => s.vip === vip);
    return svc?.backends.filter((b) => b.weight > 0).map((b) => b.ip) ?? [];
  }

  dump(): string {
    return [...this.plans.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .flatMap(([sandbox, { plan, forwards }]) => [
        `lb ${sandbox}${forwards ? " (forwards)" : ""}`,
        ...plan.services.map(
          (s) =>
            `  ${s.vip} ${s.name} ${s.scheduler}${s.fwmark ? ` mark ${s.fwmark}` : ""}${s.affinityTimeoutS ? ` affinity ${s.affinityTimeoutS}s` : ""} -> ${
              s.backends.map((b) => `${b.ip}*${b.weight}`).join(" ") || "(none)"
            }`,
        ),
      ])
      .map((l) => `${l}\n`)
      .join("");
  }
}
