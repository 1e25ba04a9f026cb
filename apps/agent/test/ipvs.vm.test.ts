// The IPVS dataplane in Debian's real kernel (this machine's has no IPVS):
// boots the kernel VM once and runs ipvs-in-vm.ts there, against real ip_vs.

import { inCi } from "@vipmesh/testing/kernel";
import { runInVm, vmUnavailable } from "@vipmesh/kernel-vm";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const REPO = fileURLToPath(new URL("../../..", import.meta.url)).replace(/\/$/, "");
const why = vmUnavailable() ?? (process.getuid?.() !== 0 ? "not root" : undefined);
if (why && !inCi()) console.warn(`\n!! SKIPPED IPVS tests in the kernel VM: ${why} (under CI=true they fail instead)\n`);

describe.skipIf(why !== undefined && !inCi())("the IPVS dataplane in a real kernel", () => {
  it("balances a VIP by firewall mark, weights, drains gracefully, survives an agent restart, refuses without tasks", { timeout: 600_000 }, async () => {
    expect(why, "what the VM needs").toBeUndefined();
    const r = await runInVm({
      // the checkout may live under /tmp, which the VM mounts afresh: share it at its own path
      shares: [REPO],
      command: `cd ${REPO}/apps/agent && node --import tsx test/ipvs-in-vm.ts`,
      memoryMb: 2048,
    });
    expect(r.output).toContain("ALL OK");
    expect(r.exitCode, r.output || r.console.slice(-3000)).toBe(0);
  });
});
