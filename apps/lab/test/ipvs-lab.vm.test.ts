// A 2-node lab on the IPVS dataplane, in Debian's real kernel (this machine's
// has no IPVS): boots the kernel VM once (4 GiB) and runs ipvs-lab-in-vm.ts
// there. About 4 minutes under emulation; `npm run test:ipvs-lab` runs it
// alone, with the VM's output as it goes.

import { describeInVm } from "@vipmesh/kernel-vm/describe";

describeInVm({
  what: "the IPVS lab",
  describe: "a 2-node lab on IPVS in a real kernel",
  it: "VIP rr across three tasks, dnsrr, the mesh from both nodes, health removal, a loss-free scale-down, an agent restart",
  script: new URL("./ipvs-lab-in-vm.ts", import.meta.url),
  // what the lab's processes load: the CLI, the manager, the agent (the script itself loads the lab)
  warm: ["@vipmesh/cli", "@vipmesh/manager", "@vipmesh/agent", "@vipmesh/lab"],
  memoryMb: 4096,
  timeoutMs: 13 * 60_000,
});
