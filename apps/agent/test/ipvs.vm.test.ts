// The IPVS dataplane in Debian's real kernel (this machine's has no IPVS):
// boots the kernel VM once and runs ipvs-in-vm.ts there, against real ip_vs.

import { describeInVm } from "@vipmesh/kernel-vm/describe";

describeInVm({
  what: "IPVS tests",
  describe: "the IPVS dataplane in a real kernel",
  it: "balances a VIP by firewall mark, weights, drains gracefully, survives an agent restart, refuses without tasks",
  script: new URL("./ipvs-in-vm.ts", import.meta.url),
});
