// An in-memory IPsec driver for unit tests of the agent: keeps the plan it
// was last given (keys shown by ID only) and can be told to fail like a kernel without ESP.

import type { IpsecDriver, IpsecPlan } from "./types.ts";

export class FakeIpsec implements IpsecDriver {
  private plan: IpsecPlan | undefined;
  /** When set, every sync fails with it (as KernelIpsec does on a kernel without ESP). */
  failure: Error | undefined;

  async sync(plan: IpsecPlan): Promise<void> {
    if (this.failure && plan.vnis.length > 0) throw this.failure;
    this.plan = structuredClone(plan);
  }

  dump(): string {
    const p = this.plan;
    if (!p || p.vnis.length === 0) return "";
    return `ipsec ${p.localAddr} vnis ${p.vnis.join(" ")} peers ${p.peers.join(" ") || "none"} keys ${p.keys.map((k) => k.id).join(" ")} tx ${p.txKeyId}\n`;
  }
}
