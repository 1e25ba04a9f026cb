// Encrypted overlays in Debian's real kernel (this machine's has no ESP):
// boots the kernel VM once and runs ipsec-in-vm.ts there, against real xfrm.

import { describeInVm } from "@vipmesh/kernel-vm/describe";

describeInVm({
  what: "encrypted overlay (IPsec) tests",
  describe: "encrypted overlays (IPsec ESP) in a real kernel",
  it: "encrypts the encrypted VNI only, drops its plaintext both ways, rotates keys without loss, converges idempotently",
  script: new URL("./ipsec-in-vm.ts", import.meta.url),
  needs: { tcpdump: "tcpdump" },
});
