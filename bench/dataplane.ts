// Benchmark (not a test): new connections per second and request latency to a
// small HTTP server through a VIP on the agent's nftables dataplane, beside
// the same server reached straight and through a userspace TCP proxy written
// in Node (what a naive load balancer does), in the same run; and through the
// VIP again with 1k and 10k other services in the same table (30k with
// --full): the kernel path must stay flat as services are added.
//
//   npm run bench:dataplane -- [--quick] [--full]      (as root; wrk is installed with apt-get when missing)
//
// Namespaces of its own: a server running the project's whoami workload on
// :8080, pinned to CPU 0, and one client per path, each on a veth pair of its
// own (client i 10.77.i.1, the server 10.77.i.2): at ~10k new connections/s,
// paths sharing a client address and server port would collide with each
// other's TIME_WAIT tuples and measure that instead. wrk (one thread, 64
// connections, `Connection: close`) runs in the client on CPU 1. Paths, same
// server process:
//   - straight: to the server's address, the baseline;
//   - VIP: 10.96.0.1:8080 → the server, DNAT-ed in the client's output hook by
//     the agent's own code (KernelNftables.sync, its table and layout), with 0,
//     1k, 10k (30k) other services, each a VIP with two backends that are
//     never contacted;
//   - userspace proxy: a Node process in the client (pinned to CPU 1 with wrk:
//     the client's core pays for it, as kube-proxy's old userspace mode made
//     every node pay) accepting on 127.0.0.1:18080 and piping each connection
//     to the server.
// Rounds alternate the paths; each figure is the median over rounds (3 of 4 s,
// --quick 1 of 2 s), p99 the median of the rounds' p99s. The numbers also go to
// bench/results/dataplane.json.

import { KernelNftables } from "@vipmesh/agent";
import { formatIpv4, parseIpv4, type LbPlan, type LbService } from "@vipmesh/core";
import { waitFor } from "@vipmesh/testing";
import { execFileSync, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { fileURLToPath } from "node:url";
import { ensureWrk, medianRun, PINNED, wrk, type WrkRun } from "./lib/wrk.ts";

const quick = process.argv.includes("--quick");
const full = process.argv.includes("--full");
const ROUNDS = quick ? 1 : 3;
const LOAD = { seconds: quick ? 2 : 4, connections: 64 };
const OTHERS = quick ? [0, 1000] : full ? [0, 1000, 10_000, 30_000] : [0, 1000, 10_000];
const VIPMESH = fileURLToPath(new URL("../bin/vipmesh", import.meta.url));
const PROXY = fileURLToPath(new URL("./lib/tcp-proxy.mjs", import.meta.url));
const ID = randomBytes(3).toString("hex");
const SERVER = `vmbench-dp-${ID}-s`;
const VIP = "10.96.0.1";
/** One client per path: its namespace, and the server's address on its link. */
const clientFor = (i: number) => ({ ns: `vmbench-dp-${ID}-c${i}`, server: `10.77.${i}.2` });
const STRAIGHT = clientFor(0);
const PROXIED = clientFor(1);
const VIA_VIP = clientFor(2);
const CLIENTS = [STRAIGHT, PROXIED, VIA_VIP];

const sh = (...cmd: string[]) => execFileSync(cmd[0]!, cmd.slice(1), { encoding: "utf8" });
const inNs = (ns: string, ...cmd: string[]) => sh("ip", "netns", "exec", ns, ...cmd);
const children: ChildProcess[] = [];

function cleanup(): void {
  for (const c of children) c.kill();
  for (const ns of [SERVER, ...CLIENTS.map((c) => c.ns)]) spawnSync("ip", ["netns", "del", ns], { stdio: "ignore" });
}
for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => (cleanup(), process.exit(130)));

/** Other service i: a VIP in 10.128.0.0/10 with two backends in 10.64.0.0/11 that nothing ever sends to. */
const other = (i: number): LbService => ({
  serviceId: `other${i}`,
  name: `other${i}`,
  vip: formatIpv4(parseIpv4("10.128.0.0")! + i),
  scheduler: "random",
  backends: [0, 1].map((b) => ({ ip: formatIpv4(parseIpv4("10.64.0.0")! + 2 * i + b), weight: 1 })),
});
const web: LbService = { serviceId: "web", name: "web", vip: VIP, scheduler: "random", backends: [{ ip: VIA_VIP.server, weight: 1 }] };
const planWith = (others: number): LbPlan => ({ services: [web, ...Array.from({ length: others }, (_, i) => other(i))] });

function network(): void {
  sh("ip", "netns", "add", SERVER);
  inNs(SERVER, "ip", "link", "set", "lo", "up");
  for (const [i, c] of CLIENTS.entries()) {
    sh("ip", "netns", "add", c.ns);
    sh("ip", "link", "add", "vmbdc", "netns", c.ns, "type", "veth", "peer", "name", `vmbds${i}`, "netns", SERVER);
    for (const [ns, dev, addr] of [[c.ns, "vmbdc", `10.77.${i}.1/24`], [SERVER, `vmbds${i}`, `${c.server}/24`]] as const) {
      inNs(ns, "ip", "addr", "add", addr, "dev", dev);
      inNs(ns, "ip", "link", "set", dev, "up");
    }
    inNs(c.ns, "ip", "link", "set", "lo", "up");
    // ~100k connections per path: reuse TIME_WAIT ports from the whole range, or connect()'s port search is what is measured
    inNs(c.ns, "sysctl", "-qw", "net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65535");
  }
  // VIPs leave by the veth (the DNAT in output rewrites them before routing is decided again)
  inNs(VIA_VIP.ns, "ip", "route", "add", "10.64.0.0/10", "dev", "vmbdc");
  inNs(VIA_VIP.ns, "ip", "route", "add", "10.128.0.0/9", "dev", "vmbdc");
}

function pinnedSpawn(ns: string, cpu: number, cmd: string[]): void {
  const c = spawn("ip", ["netns", "exec", ns, ...(PINNED ? ["taskset", "-c", String(cpu)] : []), ...cmd], { stdio: "ignore" });
  children.push(c);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("the namespaces need root");
  ensureWrk();
  network();
  pinnedSpawn(SERVER, 0, [VIPMESH, "whoami", "--port", "8080"]);
  pinnedSpawn(PROXIED.ns, 1, [process.execPath, PROXY, "127.0.0.1:18080", `${PROXIED.server}:8080`]);
  const lb = new KernelNftables();
  await lb.sync(VIA_VIP.ns, planWith(0));
  const paths = [
    { name: "straight to the server", client: STRAIGHT.ns, url: `http://${STRAIGHT.server}:8080/` },
    { name: "userspace proxy (Node, in the client)", client: PROXIED.ns, url: "http://127.0.0.1:18080/" },
    { name: "VIP (vipmesh nftables)", client: VIA_VIP.ns, url: `http://${VIP}:8080/` },
  ];
  for (const p of paths) await waitFor(`${p.url} answers`, () => spawnSync("ip", ["netns", "exec", p.client, "curl", "-sf", "-o", "/dev/null", p.url]).status === 0, 30_000);

  const runs = new Map<string, WrkRun[]>();
  const push = (name: string, r: WrkRun) => runs.set(name, [...(runs.get(name) ?? []), r]);
  for (const p of paths) wrk(p.client, p.url, LOAD); // warm-up, untimed
  for (let r = 0; r < ROUNDS; r++) {
    for (const p of r % 2 === 0 ? paths : [...paths].reverse()) {
      process.stderr.write(`round ${r + 1}/${ROUNDS}: ${p.name}…\n`);
      push(p.name, wrk(p.client, p.url, LOAD));
    }
  }
  // the VIP with more services in the same table: loaded as the agent loads them, then the same load
  const withOthers = [];
  for (const n of OTHERS) {
    const t0 = performance.now();
    await lb.sync(VIA_VIP.ns, planWith(n));
    const loadMs = performance.now() - t0;
    const rs: WrkRun[] = [];
    const straight: WrkRun[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      process.stderr.write(`round ${r + 1}/${ROUNDS}: VIP with ${n} other services…\n`);
      rs.push(wrk(VIA_VIP.ns, `http://${VIP}:8080/`, LOAD));
      straight.push(wrk(STRAIGHT.ns, `http://${STRAIGHT.server}:8080/`, LOAD));
    }
    withOthers.push({ others: n, loadMs, vip: medianRun(rs), straight: medianRun(straight) });
  }

  const summary = paths.map((p) => ({ path: p.name, ...medianRun(runs.get(p.name)!) }));
  const base = summary[0]!.rate;
  console.log(`new connections/s to one whoami server from a client namespace (wrk, ${LOAD.connections} connections, Connection: close, ${ROUNDS} × ${LOAD.seconds} s, median)`);
  console.log(`${"path".padEnd(40)} ${"conn/s".padStart(8)} ${"× straight".padStart(10)} ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)} errors`);
  for (const s of summary) console.log(`${s.path.padEnd(40)} ${s.rate.toFixed(0).padStart(8)} ${(s.rate / base).toFixed(2).padStart(10)} ${s.p50Ms.toFixed(2).padStart(7)} ${s.p99Ms.toFixed(2).padStart(7)} ${s.errors}`);
  console.log("\nthe VIP with other services in the same table (each beside straight, same rounds)");
  for (const w of withOthers) {
    console.log(`${`VIP, ${w.others} other services`.padEnd(40)} ${w.vip.rate.toFixed(0).padStart(8)} ${(w.vip.rate / w.straight.rate).toFixed(2).padStart(10)} ${w.vip.p50Ms.toFixed(2).padStart(7)} ${w.vip.p99Ms.toFixed(2).padStart(7)} ${w.vip.errors}   (loaded in ${w.loadMs.toFixed(0)} ms)`);
  }
  const flat = withOthers.at(-1)!.vip.rate / withOthers[0]!.vip.rate;
  console.log(`flat: the VIP with ${withOthers.at(-1)!.others} others keeps ${flat.toFixed(2)}× its rate with none`);
  mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
  writeFileSync(
    new URL("./results/dataplane.json", import.meta.url),
    `${JSON.stringify({ benchmark: "dataplane", date: new Date().toISOString(), kernel: release(), cpus: cpus().length, pinned: PINNED, rounds: ROUNDS, ...LOAD, paths: summary, withOthers }, null, 2)}\n`,
  );
}

main()
  .catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  })
  .finally(cleanup);
