// Runs INSIDE the kernel VM (ipvs.vm.test.ts boots it): the IPVS dataplane
// against Debian's real ip_vs. A client sandbox and three backends on one
// bridge; busybox httpd in each backend says its name. Prints one line per
// check and exits non-zero at the first that fails.

import { execFileSync, spawn } from "node:child_process";
import type { LbPlan } from "@vipmesh/core";
import { bridgedNamespaces } from "@vipmesh/kernel-vm/guest";
import { KernelIpvs } from "../src/lb/ipvs/kernel.ts";
import { IPVS_TABLE } from "../src/lb/ipvs/marks.ts";
import { ipvsStateFor, parseIpvsSave } from "../src/lb/ipvs/plan.ts";

const sh = (...cmd: string[]) => execFileSync(cmd[0]!, cmd.slice(1), { encoding: "utf8" });
const inNs = (ns: string, ...cmd: string[]) => sh("ip", "netns", "exec", ns, ...cmd);
function check(ok: boolean, what: string, detail = ""): void {
  console.log(`${ok ? "ok" : "FAILED"} ${what}${ok || !detail ? "" : `: ${detail}`}`);
  if (!ok) process.exit(1);
}

const C = "vmc";
const BACKENDS = ["vmb1", "vmb2", "vmb3"];
const ip = (i: number) => `10.0.1.${11 + i}`;
const VIP = "10.0.1.2";

// the network: a bridge, the client at .5, backends at .11-.13, each serving its own name
bridgedNamespaces([{ name: C, addr: "10.0.1.5/24" }, ...BACKENDS.map((name, i) => ({ name, addr: `${ip(i)}/24`, serve: true }))]);
for (const ns of BACKENDS) {
  // a long-lived connection's far end: echoes what it gets
  spawn("ip", ["netns", "exec", ns, "busybox", "nc", "-l", "-p", "9000", "-e", "cat"], { stdio: "ignore", detached: true }).unref();
}

const plan = (backends: { i: number; weight: number }[], o: Partial<LbPlan["services"][0]> = {}): LbPlan => ({
  services: [{ serviceId: "web", name: "web", vip: VIP, fwmark: 300, scheduler: "rr", backends: backends.map((b) => ({ ip: ip(b.i), weight: b.weight })), ...o }],
});
const get = () => inNs(C, "curl", "-s", "--max-time", "3", `http://${VIP}/`).trim();
const saved = () => parseIpvsSave(inNs(C, "ipvsadm", "-Sn"));

const ipvs = new KernelIpvs({ drainMs: 60_000 });
await ipvs.sync(C, plan([0, 1, 2].map((i) => ({ i, weight: 1 }))));
const six = Array.from({ length: 6 }, get);
check(BACKENDS.every((b) => six.filter((x) => x === b).length === 2), "rr: six requests to the VIP, two per backend", six.join(" "));
check(JSON.stringify(saved()) === JSON.stringify(ipvsStateFor(plan([0, 1, 2].map((i) => ({ i, weight: 1 }))))), "ipvsadm -Sn read back is the plan", inNs(C, "ipvsadm", "-Sn"));
check(inNs(C, "sysctl", "-n", "net.ipv4.vs.expire_nodest_conn").trim() === "1", "sysctls set in the sandbox");

// weights 1:3 → wrr; the heavier backend gets 3 of every 4 new connections
await ipvs.sync(C, plan([{ i: 0, weight: 1 }, { i: 1, weight: 3 }]));
const eight = Array.from({ length: 8 }, get);
check(eight.filter((x) => x === "vmb2").length >= 5 && eight.includes("vmb1") && !eight.includes("vmb3"), "weights 1:3 (wrr)", eight.join(" "));
check(saved().services[0]!.dests.some((d) => d.ip === ip(2) && d.weight === 0), "a backend that left is quiesced first, even idle", inNs(C, "ipvsadm", "-Sn"));
await ipvs.sync(C, plan([{ i: 0, weight: 1 }, { i: 1, weight: 3 }]));
check(saved().services[0]!.dests.length === 2, "and deleted by the next sync once it has no connection", inNs(C, "ipvsadm", "-Sn"));

// a second service, then its leaving, change the loaded marks map by elements: read back, both are right
const api: LbPlan["services"][0] = { serviceId: "api", name: "api", vip: "10.0.1.3", fwmark: 301, scheduler: "rr", backends: [{ ip: ip(2), weight: 1 }] };
const withApi = { services: [...plan([{ i: 0, weight: 1 }, { i: 1, weight: 3 }]).services, api] };
await ipvs.sync(C, withApi);
const marks = () => inNs(C, "nft", "list", "map", "ip", IPVS_TABLE, "vip_marks");
check(marks().includes(`${VIP} : 0x0000012c`) && marks().includes("10.0.1.3 : 0x0000012d"), "a service added: its mark joins the map", marks());
check(JSON.stringify(saved()) === JSON.stringify(ipvsStateFor(withApi)), "and its virtual service is in IPVS", inNs(C, "ipvsadm", "-Sn"));
check(inNs(C, "curl", "-s", "--max-time", "3", "http://10.0.1.3/").trim() === "vmb3", "and its VIP answers");
await ipvs.sync(C, plan([{ i: 0, weight: 1 }, { i: 1, weight: 3 }]));
check(!marks().includes("10.0.1.3") && saved().services.length === 1, "the service gone: its mark and virtual service go", `${marks()} ${inNs(C, "ipvsadm", "-Sn")}`);

// graceful: a backend that leaves with an open connection is quiesced, keeps it, and goes once it ends
const holder = spawn("ip", ["netns", "exec", C, "busybox", "nc", VIP, "9000"], { stdio: ["pipe", "pipe", "ignore"] });
let echoed = "";
holder.stdout.on("data", (d: Buffer) => (echoed += d));
holder.stdin.write("before\n");
await new Promise((r) => setTimeout(r, 1000));
check(echoed.includes("before"), "the connection from the sandbox answers", echoed);
const connected = inNs(C, "ipvsadm", "-Lnc");
const holderIp = /(10\.0\.1\.1[123]):9000/.exec(connected)?.[1];
check(holderIp !== undefined, "IPVS has the connection", connected);
const holderIndex = [0, 1, 2].find((i) => ip(i) === holderIp)!;
const others = [0, 1, 2].filter((i) => i !== holderIndex);
await ipvs.sync(C, plan(others.map((i) => ({ i, weight: 1 }))));
check(saved().services[0]!.dests.some((d) => d.ip === holderIp && d.weight === 0), "the backend with a connection is quiesced (weight 0), not deleted", inNs(C, "ipvsadm", "-Sn"));
check(ipvs.drainingIn(C) === 1, "and is draining");
const after = Array.from({ length: 4 }, get);
check(!after.includes(BACKENDS[holderIndex]!), "no new connection goes to it", after.join(" "));

// a restarted agent (a new process: nothing remembered) changes nothing, and the connection lives on
const restarted = new KernelIpvs({ drainMs: 60_000 });
const before = inNs(C, "ipvsadm", "-Sn");
await restarted.sync(C, plan(others.map((i) => ({ i, weight: 1 }))));
check(inNs(C, "ipvsadm", "-Sn") === before, "a restarted agent leaves IPVS as it was");
holder.stdin.write("after\n");
await new Promise((r) => setTimeout(r, 1000));
check(echoed.includes("after"), "the established connection through the VIP still works after the restart", echoed);
holder.kill();
await new Promise((r) => setTimeout(r, 500));
await restarted.sync(C, plan(others.map((i) => ({ i, weight: 1 }))));
const left = saved().services[0]!.dests.map((d) => d.ip).sort();
check(JSON.stringify(left) === JSON.stringify(others.map(ip).sort()), "once its connection ended, the next sync deletes it: no stale real server", left.join(" "));

// no ready task: refused at once; the service gone: nothing of it left
await restarted.sync(C, plan([]));
const refused = (() => {
  try {
    inNs(C, "curl", "-s", "--max-time", "3", `http://${VIP}/`);
    return "answered";
  } catch (e) {
    return `exit ${(e as { status?: number }).status}`;
  }
})();
check(refused === "exit 7", "a VIP without tasks refuses at once (curl exit 7, not 28)", refused);
await restarted.sync(C, { services: [] });
check(saved().services.length === 0, "a service that left leaves no virtual service");
check(!inNs(C, "nft", "list", "map", "ip", IPVS_TABLE, "vip_marks").includes(VIP), "nor its mark");
console.log("ALL OK");
process.exit(0);
