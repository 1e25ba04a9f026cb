// An encrypted overlay between two lab nodes, in Debian's real kernel (this
// machine's has no ESP): boots the kernel VM once (4 GiB) and runs
// encrypted-lab-in-vm.ts there. About 3.5 minutes under emulation; `npm run
// test:encrypted-lab` runs it alone, with the VM's output as it goes.

import { describeInVm } from "@vipmesh/kernel-vm/describe";

describeInVm({
  what: "the encrypted lab",
  describe: "an encrypted overlay between two lab nodes in a real kernel",
  it: "carries traffic in ESP only, drops injected plaintext VXLAN, rotates its key under a request loop without a loss",
  script: new URL("./encrypted-lab-in-vm.ts", import.meta.url),
  needs: { tcpdump: "tcpdump" },
  // what the lab's processes load: the CLI, the manager, the agent (the script itself loads the lab)
  warm: ["@vipmesh/cli", "@vipmesh/manager", "@vipmesh/agent", "@vipmesh/lab"],
  memoryMb: 4096,
  timeoutMs: 13 * 60_000,
});
