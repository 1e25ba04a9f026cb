// Boots Debian's kernel under qemu once and checks what the kernel tests in
// the VM rely on: IPVS, this machine's tools and Node, namespaces, a writable
// shared directory, and the command's exit status coming back.

import { inCi } from "@vipmesh/testing/kernel";
import { tempDir } from "@vipmesh/testing";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runInVm, vmUnavailable } from "../src/vm.ts";

const why = vmUnavailable() ?? (process.getuid?.() !== 0 ? "not root" : undefined);
if (why && !inCi()) console.warn(`\n!! SKIPPED kernel VM tests: ${why} (under CI=true they fail instead)\n`);

describe.skipIf(why !== undefined && !inCi())("the kernel VM", () => {
  it("runs a command as root in a kernel with IPVS, shares a directory, and returns the command's status", async () => {
    expect(why, "what the VM needs").toBeUndefined();
    const dir = tempDir("vipmesh-vm-");
    try {
      const r = await runInVm({
        command: [
          // a real server needs a route to it (IPVS refuses one that is not unicast from here)
          "ip link set lo up && ip route add 10.0.0.0/24 dev lo",
          "ipvsadm -A -f 256 -s rr && ipvsadm -a -f 256 -r 10.0.0.5:0 -m -w 2 && ipvsadm -Sn",
          "ip netns add vm-probe && ip netns list",
          `node -e 'require("fs").writeFileSync("${dir.path}/from-vm", process.version)'`,
          "exit 7",
        ].join("; "),
        shares: [dir.path],
      });
      expect(r.exitCode, r.console.slice(-2000)).toBe(7);
      expect(r.output).toContain("-A -f 256 -s rr");
      expect(r.output).toContain("-a -f 256 -r 10.0.0.5:0 -m -w 2");
      expect(r.output).toContain("vm-probe");
      expect(readFileSync(join(dir.path, "from-vm"), "utf8")).toBe(process.version);
    } finally {
      dir.remove();
    }
  });
});
