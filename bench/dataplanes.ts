// Benchmark (not a test): the nftables and IPVS dataplanes side by side on the
// same workload, in Debian's kernel under qemu (these machines' kernel has no
// IPVS): what is measured, and why only ratios count, is in dataplanes-in-vm.ts.
//
//   npm run bench:dataplanes -- [--services N]      (as root; packages/kernel-vm boots the VM)

import { runInVm } from "@vipmesh/kernel-vm";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const at = process.argv.indexOf("--services");
const services = at >= 0 ? Number(process.argv[at + 1]) : 1000;
if (!Number.isInteger(services) || services < 1) throw new Error("--services wants a whole number of services");
const r = await runInVm({
  shares: [REPO],
  command: `cd ${REPO}/bench && SERVICES=${services} node --import tsx dataplanes-in-vm.ts`,
  memoryMb: 2048,
});
process.stdout.write(r.output);
if (r.exitCode !== 0) {
  console.error(`the benchmark in the VM failed (exit ${r.exitCode}):\n${r.console.slice(-3000)}`);
  process.exit(1);
}
