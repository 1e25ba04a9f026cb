// Benchmark (not a test): the nftables and IPVS dataplanes side by side on the
// same workload, with libnetwork's way (an iptables rule per VIP) as the IPVS
// baseline, in Debian's kernel under qemu (these machines' kernel has no
// IPVS): what is measured, and why only ratios count, is in dataplanes-in-vm.ts.
//
//   npm run bench:dataplanes -- [--services N]      (as root; packages/kernel-vm boots the VM)
//
// The numbers also go to bench/results/dataplanes.json.

import { runInVm } from "@vipmesh/kernel-vm";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const REPO = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "");
const at = process.argv.indexOf("--services");
const services = at >= 0 ? Number(process.argv[at + 1]) : 1000;
if (!Number.isInteger(services) || services < 11) throw new Error("--services wants a whole number of services, 11 or more");
// the VM runs on this machine's root filesystem: what it runs must be installed here
if (spawnSync("iptables", ["--version"]).error !== undefined) {
  process.stderr.write("installing iptables (the libnetwork baseline)…\n");
  execFileSync("apt-get", ["install", "-y", "--no-install-recommends", "iptables"], { stdio: "inherit", env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" } });
}
const r = await runInVm({
  shares: [REPO],
  command: `cd ${REPO}/bench && SERVICES=${services} node --import tsx dataplanes-in-vm.ts`,
  memoryMb: 2048,
});
process.stdout.write(r.output.replace(/^RESULT .*\n?/m, ""));
const result = /^RESULT (.*)$/m.exec(r.output)?.[1];
if (r.exitCode !== 0 || !result) {
  console.error(`the benchmark in the VM failed (exit ${r.exitCode}):\n${r.console.slice(-3000)}`);
  process.exit(1);
}
mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
writeFileSync(new URL("./results/dataplanes.json", import.meta.url), `${JSON.stringify({ benchmark: "dataplanes", date: new Date().toISOString(), emulated: true, ...JSON.parse(result) }, null, 2)}\n`);
