// A 2-node lab on the IPVS dataplane, in Debian's real kernel (this machine's
// has no IPVS): boots the kernel VM once (4 GiB) and runs ipvs-lab-in-vm.ts
// there. About 4 minutes under emulation; `npm run test:ipvs-lab` runs it
// alone, with the VM's output as it goes.

import { inCi } from "@vipmesh/testing/kernel";
import { runInVm, vmUnavailable } from "@vipmesh/kernel-vm";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const REPO = fileURLToPath(new URL("../../..", import.meta.url)).replace(/\/$/, "");
const why = vmUnavailable() ?? (process.getuid?.() !== 0 ? "not root" : undefined);
if (why && !inCi()) console.warn(`\n!! SKIPPED the IPVS lab in the kernel VM: ${why} (under CI=true it fails instead)\n`);

describe.skipIf(why !== undefined && !inCi())("a 2-node lab on IPVS in a real kernel", () => {
  it("VIP rr across three tasks, dnsrr, the mesh from both nodes, health removal, a loss-free scale-down, an agent restart", { timeout: 14 * 60_000 }, async () => {
    expect(why, "what the VM needs").toBeUndefined();
    const r = await runInVm({
      // the checkout may live under /tmp, which the VM mounts afresh: share it at its own path
      shares: [REPO],
      command: `cd ${REPO}/apps/lab && node --import tsx test/ipvs-lab-in-vm.ts`,
      memoryMb: 4096,
      timeoutMs: 13 * 60_000,
      onOutput: process.env.VIPMESH_VM_VERBOSE ? (s) => process.stderr.write(s) : undefined,
    });
    expect(r.output).toContain("ALL OK");
    expect(r.exitCode, r.output || r.console.slice(-3000)).toBe(0);
  });
});
