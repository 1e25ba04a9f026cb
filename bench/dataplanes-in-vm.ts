// Runs INSIDE the kernel VM (bench/dataplanes.ts boots it): the nftables and
// IPVS dataplanes on the same workload, side by side. Two client sandboxes
// (one per dataplane) and three backends (busybox httpd) on one bridge.
//   - sync: loading 1,000 services × 2 backends into a sandbox from nothing,
//     then adding one more service;
//   - connection rate through a VIP with three backends: wrk, 16 connections,
//     `Connection: close` (every request a new connection), 5 s.
// Under emulation every figure is several times slower than on hardware:
// compare them with each other, not with anything measured outside the VM.

import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import type { LbPlan, LbService } from "@vipmesh/core";
import { KernelIpvs, KernelNftables } from "@vipmesh/agent";
import { bridgedNamespaces } from "@vipmesh/kernel-vm/guest";

const SERVICES = Number(process.env.SERVICES ?? 1000);
const sh = (...cmd: string[]) => execFileSync(cmd[0]!, cmd.slice(1), { encoding: "utf8", maxBuffer: 64 << 20 });
const inNs = (ns: string, ...cmd: string[]) => sh("ip", "netns", "exec", ns, ...cmd);
const backends = [11, 12, 13].map((n) => `10.0.1.${n}`);

bridgedNamespaces([
  { name: "nft", addr: "10.0.1.5/16" },
  { name: "ipvs", addr: "10.0.1.6/16" },
  ...backends.map((a, i) => ({ name: `b${i}`, addr: `${a}/16`, serve: true })),
]);

const service = (i: number, count = 2): LbService => ({
  serviceId: `s${i}`,
  name: `s${i}`,
  vip: `10.0.${2 + (i >> 8)}.${i & 255}`,
  fwmark: 256 + i,
  scheduler: "rr",
  backends: backends.slice(0, count).map((ip) => ({ ip, weight: 1 })),
});
const plan: LbPlan = { services: [service(0, 3), ...Array.from({ length: SERVICES - 1 }, (_, i) => service(i + 1))] };
const plus: LbPlan = { services: [...plan.services, service(SERVICES)] };

async function time(f: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
}

const rows: string[] = [];
for (const [ns, dp] of [["nft", new KernelNftables()], ["ipvs", new KernelIpvs()]] as const) {
  const load = await time(() => dp.sync(ns, plan));
  const add = await time(() => dp.sync(ns, plus));
  const out = inNs(ns, "wrk", "-t1", "-c16", "-d5s", "-H", "Connection: close", `http://${plan.services[0]!.vip}/`);
  const rate = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors: (.*)/.exec(out)?.[1] ?? "none";
  rows.push(`${dp.dataplane.padEnd(9)} ${`${load.toFixed(0)} ms`.padStart(12)} ${`${add.toFixed(0)} ms`.padStart(12)} ${rate.toFixed(0).padStart(10)}  socket errors: ${errors}`);
}
console.log(`dataplanes in Debian's kernel under qemu (emulated: compare the rows, not with hardware), ${SERVICES} services × 2 backends`);
console.log(`${"dataplane".padEnd(9)} ${"load all".padStart(12)} ${"add one".padStart(12)} ${"conn/s".padStart(10)}`);
for (const r of rows) console.log(r);
process.exit(0);
