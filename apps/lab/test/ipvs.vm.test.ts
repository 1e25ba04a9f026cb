// A 2-node lab on the IPVS dataplane, in Debian's real kernel (this machine's
// has no IPVS): boots the kernel VM once and runs ipvs-lab-in-vm.ts there.

import { runInVm, vmUnavailable } from "@vipmesh/kernel-vm";
import { inCi } from "@vipmesh/testing/kernel";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const REPO = fileURLToPath(new URL("../../..", import.meta.url)).replace(/\/$/, "");
const why = vmUnavailable() ?? (process.getuid?.() !== 0 ? "not root" : undefined);
if (why && !inCi()) console.warn(`\n!! SKIPPED the IPVS lab in the kernel VM: ${why} (under CI=true it fails instead)\n`);

describe.skipIf(why !== undefined && !inCi())("a 2-node lab on IPVS, in a real kernel", () => {
  it("balances VIPs round-robin, resolves dnsrr, answers the mesh on both nodes, follows health, scales down without a lost request; ipvsadm matches the view", { timeout: 15 * 60_000 }, async () => {
    expect(why, "what the VM needs").toBeUndefined();
    const r = await runInVm({
      shares: [REPO], // the checkout may live under /tmp, which the VM mounts afresh
      command: `cd ${REPO}/apps/lab && node --import tsx test/ipvs-lab-in-vm.ts`,
      memoryMb: 4096,
      timeoutMs: 14 * 60_000,
      onOutput: (s) => process.env.VIPMESH_VM_VERBOSE && process.stderr.write(s),
    });
    expect(r.output).toContain("ALL OK");
    expect(r.exitCode, r.output || r.console.slice(-3000)).toBe(0);
  });
});
