// Runs INSIDE the kernel VM (bench/dataplanes.ts boots it): the nftables and
// IPVS dataplanes on the same workload, side by side, and libnetwork's way of
// marking VIPs for IPVS (an iptables rule per VIP) as the baseline. Three
// client sandboxes (one per way) and three backends (busybox httpd) on one bridge.
//   - sync: loading 1,000 services × 2 backends into a sandbox from nothing,
//     then adding one more service;
//   - connection rate through a VIP with three backends: wrk, 16 connections,
//     `Connection: close` (every request a new connection), 5 s.
// Under emulation every figure is several times slower than on hardware:
// compare them with each other, not with anything measured outside the VM.

import { execFileSync } from "node:child_process";
import { performance } from "node:perf_hooks";
import type { LbPlan, LbService } from "@vipmesh/core";
import { ipvsChanges, ipvsStateFor, KernelIpvs, KernelNftables } from "@vipmesh/agent";
import { bridgedNamespaces } from "@vipmesh/kernel-vm/guest";
import { wrk } from "./lib/wrk.ts";

const SERVICES = Number(process.env.SERVICES ?? 1000);
const sh = (...cmd: string[]) => execFileSync(cmd[0]!, cmd.slice(1), { encoding: "utf8", maxBuffer: 64 << 20 });
const inNs = (ns: string, ...cmd: string[]) => sh("ip", "netns", "exec", ns, ...cmd);
const backends = [11, 12, 13].map((n) => `10.0.1.${n}`);

bridgedNamespaces([
  { name: "nft", addr: "10.0.1.5/16" },
  { name: "ipvs", addr: "10.0.1.6/16" },
  { name: "libnetwork", addr: "10.0.1.7/16" },
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

/** New connections/s through `vip` from `ns`: 16 connections, 5 s. */
const rateThrough = (ns: string, vip: string) => wrk(ns, `http://${vip}/`, { seconds: 5, connections: 16 });

interface Row {
  name: string;
  loadMs: number;
  /** Set when the load was not timed whole but as N × one call (see below). */
  loadEstimated?: boolean;
  addMs: number;
  connPerS: number;
  /** Socket errors and non-2xx answers. */
  errors: number;
}
const rows: Row[] = [];
/** What KernelIpvs writes for `p` into an empty sandbox: one `ipvsadm --restore` batch. */
const ipvsRestore = (p: LbPlan) => ipvsChanges({ services: [] }, ipvsStateFor(p), new Map(), () => false).commands;
for (const [ns, dp] of [["nft", new KernelNftables()], ["ipvs", new KernelIpvs()]] as const) {
  const loadMs = await time(() => dp.sync(ns, plan));
  const addMs = await time(() => dp.sync(ns, plus));
  const r = rateThrough(ns, plan.services[0]!.vip);
  rows.push({ name: dp.dataplane, loadMs, addMs, connPerS: r.rate, errors: r.errors });
}

// libnetwork's way, the baseline for IPVS: one iptables mangle rule per VIP, each its own `iptables`
// call (libnetwork execs iptables per rule), and the IPVS services. Its IPVS calls are given the
// same single `ipvsadm --restore` as ours, so that the difference is the mark rules alone. Loading
// N rules one call at a time under emulation takes many minutes: all but the last 10 are loaded with
// iptables-restore (untimed), then the last 10 are timed, a call each; "load all" is N × their mean, said as such.
{
  const ns = "libnetwork";
  const markRule = (s: LbService) => `-A OUTPUT -d ${s.vip}/32 -j MARK --set-mark ${s.fwmark}`;
  sh("iptables", "--version"); // installed on the host by bench/dataplanes.ts
  execFileSync("ip", ["netns", "exec", ns, "iptables-restore"], { input: `*mangle\n${plan.services.slice(0, -10).map(markRule).join("\n")}\nCOMMIT\n` });
  const calls: number[] = [];
  for (const s of plan.services.slice(-10)) calls.push(await time(async () => void inNs(ns, "iptables", "-t", "mangle", ...markRule(s).split(" "))));
  const ipvsLoad = await time(async () => void execFileSync("ip", ["netns", "exec", ns, "ipvsadm", "--restore"], { input: ipvsRestore(plan) }));
  const perCall = calls.reduce((a, b) => a + b, 0) / calls.length;
  const addMs = await time(async () => {
    inNs(ns, "iptables", "-t", "mangle", ...markRule(plus.services.at(-1)!).split(" "));
    execFileSync("ip", ["netns", "exec", ns, "ipvsadm", "--restore"], { input: ipvsRestore({ services: [plus.services.at(-1)!] }) });
  });
  inNs(ns, "sysctl", "-qw", "net.ipv4.vs.conntrack=1", "net.ipv4.vs.conn_reuse_mode=0");
  const r = rateThrough(ns, plan.services[0]!.vip);
  rows.push({ name: "libnetwork (iptables rule per VIP)", loadMs: perCall * SERVICES + ipvsLoad, loadEstimated: true, addMs, connPerS: r.rate, errors: r.errors });
}

console.log(`dataplanes in Debian's kernel under qemu (emulated: compare the rows, not with hardware), ${SERVICES} services × 2 backends`);
console.log(`${"dataplane".padEnd(36)} ${"load all".padStart(12)} ${"add one".padStart(12)} ${"conn/s".padStart(10)}`);
for (const r of rows) {
  console.log(`${r.name.padEnd(36)} ${`${r.loadEstimated ? "~" : ""}${r.loadMs.toFixed(0)} ms`.padStart(12)} ${`${r.addMs.toFixed(0)} ms`.padStart(12)} ${r.connPerS.toFixed(0).padStart(10)}  errors: ${r.errors}`);
}
console.log(`RESULT ${JSON.stringify({ services: SERVICES, rows })}`);
process.exit(0);
