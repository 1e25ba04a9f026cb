// DNS benchmark (not a test): queries per second and latency (p50, p99) of the
// agent's embedded DNS against dnsmasq, both serving the same 30 000 services
// on the same machine, measured with dnsperf.
//
//   npx tsx bench/dns.ts [--quick]     (as root; or `npm run bench:dns -- --quick`)
//
// Wrap it in `flock /tmp/vipmesh-kernel.lock …` when other kernel workloads may run.
// Records: 30 000 vip-mode services on one overlay network (10.0.0.0/14), each
// with a VIP and 2 ready tasks, turned into DnsRecords by dnsRecordsFor (what
// the agent does for a sandbox on that network): 60 000 names, `<service>` → its
// VIP and `tasks.<service>` → its 2 task IPs (shuffled per answer).
// Servers, each in a namespace of its own (vmbench-dns-<random>-agent / -dnsmasq, lo up):
//   - embedded: EmbeddedDns in this process, attached to its namespace as the
//     agent attaches a sandbox (127.0.0.11:53): JavaScript answers a name's
//     first query, the replay thread (replay.c) the same query after that;
//   - dnsmasq: the same names in an addn-hosts file (VIP and task IPs), no
//     upstream (--no-resolv), no /etc/hosts, cache 10 000, local TTL 2 s as ours,
//     at 127.0.0.53:53.
// dnsperf and dnsmasq (dnsmasq-base: the binary, no system service) are
// installed with apt-get when missing.
// Queries: the 60 000 names (A) in a seeded random order; dnsperf loops over them.
// Load: dnsperf 2.10, one thread, one socket, up to 100 queries in flight, run in
// the server's namespace (ip netns exec). On a machine with 2 CPUs or more the
// server runs on CPU 0 (this whole process, all its threads, when it is the
// embedded DNS) and dnsperf on CPU 1, so each figure is one server core's.
// Phases per server, alternating servers, each after a warm-up (saturated: one pass over
// the names; fixed: 1 s at the rate):
//   1. saturated: as fast as the server answers, for N s (10, --quick 3): q/s and latency;
//   2. fixed rate: 10 000 q/s offered (dnsperf -Q), N s: latency when not queueing.
// Each embedded run says how many answers replay.c replayed and how many JavaScript
// gave (a name's first query after a records change). Then, the embedded DNS only:
//   3. first queries: new records (so nothing is replayed) and one pass over the 60 000
//      names, each asked once: the rate of the JavaScript path, what a burst of new names gets.
// Reference, saturated only: Node's UDP floor, a Node process (the same node) on CPU 0
// that sends each query straight back as its reply (QR set, no answers): what Node's
// dgram costs per query with no DNS work at all, the most a single-threaded Node server
// can answer on that core.
// p99: dnsperf 2.10 prints only the average and standard deviation of the
// latency; with -v it prints every query's rcode and latency (µs resolution),
// which goes to a file and is ranked here (nearest rank). -v costs dnsperf a
// little CPU, the same for both servers.
// Ratios are embedded / dnsmasq: above 1 is better for q/s, worse for latency.
// The report says how much CPU other processes used during each run (from
// /proc/stat, less this process, dnsmasq and dnsperf): a run on a busy machine is
// not worth comparing. The numbers also go to bench/results/dns.json.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import { EmbeddedDns } from "@vipmesh/agent";
import {
  type DnsRecords,
  type NetworkView,
  type ViewEndpoint,
  dnsRecordsFor,
  emptyView,
  formatIpv4,
  macForIpv4,
  parseIpv4,
  seededRandom,
} from "@vipmesh/core";

const quick = process.argv.includes("--quick");
const SECONDS = quick ? 3 : 10;
const WARMUP_S = 1;
const SERVICES = 30_000;
const TASKS_PER_SERVICE = 2;
const FIXED_QPS = 10_000;
const IN_FLIGHT = 100;
const EMBEDDED_ADDR = "127.0.0.11";
const DNSMASQ_ADDR = "127.0.0.53";
const FLOOR_ADDR = "127.0.0.12";
const NET = "benchnet";

const id = randomBytes(3).toString("hex");
const NS_AGENT = `vmbench-dns-${id}-agent`;
const NS_DNSMASQ = `vmbench-dns-${id}-dnsmasq`;
const pin = cpus().length >= 2;

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const has = (cmd: string): boolean => {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
};

/** dnsperf and dnsmasq-base (the binary only: no dnsmasq service is started in the root namespace). */
function ensureTools(): void {
  if (has("dnsperf") && has("dnsmasq")) return;
  process.stderr.write("installing dnsperf and dnsmasq-base with apt-get…\n");
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () =>
    execFileSync("apt-get", ["install", "-y", "--no-install-recommends", "dnsperf", "dnsmasq-base"], { env, stdio: ["ignore", "ignore", "inherit"] });
  try {
    install();
  } catch {
    execFileSync("apt-get", ["update"], { env, stdio: ["ignore", "ignore", "inherit"] });
    install();
  }
  if (!has("dnsperf") || !has("dnsmasq")) throw new Error("dnsperf or dnsmasq still missing after apt-get install");
}

interface Cluster {
  view: NetworkView;
  /** The dnsmasq hosts file: the same names and addresses. */
  hosts: string;
  /** Every name the records answer with addresses (service and tasks.<service>). */
  names: string[];
}

/** 30 000 vip services with 2 ready tasks each on one network, as the manager would give a node's view. */
function cluster(): Cluster {
  const view = emptyView();
  view.networks.set(NET, { id: NET, name: NET, subnet: "10.0.0.0/14", gateway: "10.0.0.1", vni: 4096, encrypted: false, ingress: false });
  const vipBase = parseIpv4("10.0.0.2")!;
  const taskBase = parseIpv4("10.1.0.2")!;
  const hosts: string[] = [];
  const names: string[] = [];
  for (let i = 0; i < SERVICES; i++) {
    const serviceId = `s${i.toString(36).padStart(24, "0")}`;
    const name = `svc-${String(i).padStart(5, "0")}`;
    const vip = formatIpv4(vipBase + i);
    view.services.set(serviceId, { id: serviceId, name, endpointMode: "vip", ports: [], virtualIps: [{ networkId: NET, addr: `${vip}/14` }], lbScheduler: "" });
    hosts.push(`${vip} ${name}`);
    names.push(name, `tasks.${name}`);
    for (let j = 0; j < TASKS_PER_SERVICE; j++) {
      const taskId = `t${(i * TASKS_PER_SERVICE + j).toString(36).padStart(24, "0")}`;
      const addr = formatIpv4(taskBase + i * TASKS_PER_SERVICE + j);
      const e: ViewEndpoint = {
        key: `${taskId}/${NET}`,
        taskId,
        serviceId,
        networkId: NET,
        addr: `${addr}/14`,
        mac: macForIpv4(addr),
        nodeId: `node${(i + j) % 10}`,
        nodeAddr: `192.168.0.${((i + j) % 10) + 1}`,
        ready: true,
        weight: 1,
      };
      view.endpoints.set(e.key, e);
      hosts.push(`${addr} tasks.${name}`);
    }
  }
  return { view, hosts: `${hosts.join("\n")}\n`, names };
}

// ---- cleanup: namespaces and processes of this run, on the way out and on SIGINT/SIGTERM

const children = new Set<ChildProcess>();
let embedded: EmbeddedDns | undefined;
let workDir: string | undefined;

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.on("exit", () => children.delete(child));
  return child;
}

function cleanup(): void {
  for (const c of children) {
    try {
      // dnsperf runs in a process group of its own (under bash): the whole group
      if (c.pid) process.kill(c.spawnargs.includes("dnsperf") ? -c.pid : c.pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
  children.clear();
  for (const ns of [NS_AGENT, NS_DNSMASQ]) {
    try {
      execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
    } catch {
      // not made (yet)
    }
  }
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

async function shutdown(): Promise<void> {
  // closing the sockets first: they hold the namespace alive otherwise
  await embedded?.close().catch(() => {});
  embedded = undefined;
  cleanup();
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    process.stderr.write(`\n${sig}: cleaning up\n`);
    void shutdown().finally(() => process.exit(130));
  });
}

function addNamespace(name: string): void {
  sh("ip", ["netns", "add", name]);
  sh("ip", ["-n", name, "link", "set", "lo", "up"]);
}

// ---- CPU accounting: how busy the rest of the machine was during a run

/** Busy CPU time of the whole machine, ms (user, nice, system, irq, softirq; from /proc/stat). */
function machineBusyMs(): number {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = f;
  return ((user + nice + system + irq + softirq) * 1000) / 100; // USER_HZ is 100 on Linux
}

/** CPU time of a process (all its threads), ms. */
function processCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

const selfCpuMs = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

// ---- dnsperf

interface Run {
  qps: number;
  sent: number;
  completed: number;
  lost: number;
  /** Replies other than NOERROR. */
  notNoerror: number;
  p50Ms: number;
  p99Ms: number;
  avgMs: number;
  maxMs: number;
  /** CPU other processes used meanwhile, % of all CPUs. */
  othersPct: number;
  /** CPU the server used (dnsmasq's or the floor's process; this whole process for the embedded DNS), % of one CPU. */
  serverPct: number;
  /** CPU dnsperf used, % of one CPU: near 100, it is dnsperf that sets the pace. */
  dnsperfPct: number;
}

const pct = (sorted: Float64Array, p: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;

/**
 * dnsperf in `ns` against `server` for `seconds` (at `rate` q/s, or as fast as it answers).
 * Asynchronous: the embedded DNS answering it runs on this process's event loop.
 */
/** `length`: seconds, or `{ passes }` through the query file. */
async function dnsperf(ns: string, server: string, queries: string, length: number | { passes: number }, rate: number | undefined, serverPid: number | undefined): Promise<Run> {
  const out = join(workDir!, "dnsperf.out");
  const args = ["-s", server, "-d", queries, ...(typeof length === "number" ? ["-l", String(length)] : ["-n", String(length.passes)])];
  args.push("-T", "1", "-c", "1", "-q", String(IN_FLIGHT), "-t", "2", "-v");
  if (rate) args.push("-Q", String(rate));
  // bash's `times` reports the CPU its child (dnsperf) used
  const script = `${pin ? "taskset -c 1 " : ""}dnsperf "$@" >${out}; s=$?; times >&2; exit $s`;
  const machine0 = machineBusyMs();
  const self0 = selfCpuMs();
  const server0 = serverPid ? processCpuMs(serverPid) : 0;
  const t0 = performance.now();
  const child = track(spawn("ip", ["netns", "exec", ns, "bash", "-c", script, "dnsperf", ...args], { stdio: ["ignore", "ignore", "pipe"], detached: true }));
  let stderr = "";
  child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
  const wallMs = performance.now() - t0;
  const serverMs = serverPid ? processCpuMs(serverPid) - server0 : selfCpuMs() - self0;
  const dnsperfMs = bashChildrenCpuMs(stderr);
  const ownMs = (serverPid ? selfCpuMs() - self0 : 0) + serverMs + dnsperfMs;
  const othersPct = Math.max(0, ((machineBusyMs() - machine0 - ownMs) / (wallMs * cpus().length)) * 100);
  if (code !== 0) throw new Error(`dnsperf exited with ${code}: ${stderr.trim()}`);
  return { ...parseDnsperf(readFileSync(out, "latin1"), othersPct), serverPct: (serverMs / wallMs) * 100, dnsperfPct: (dnsperfMs / wallMs) * 100 };
}

/** The children's user and system time from bash's `times` (its second line), ms. */
function bashChildrenCpuMs(stderr: string): number {
  const lines = stderr.trim().split("\n");
  const m = /(\d+)m([\d.]+)s\s+(\d+)m([\d.]+)s\s*$/.exec(lines[lines.length - 1] ?? "");
  return m ? (Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4])) * 1000 : 0;
}

function parseDnsperf(text: string, othersPct: number): Omit<Run, "serverPct" | "dnsperfPct"> {
  const num = (label: string): number => {
    const m = new RegExp(`${label}:\\s+([\\d.]+)`).exec(text);
    if (!m) throw new Error(`dnsperf output without "${label}":\n${text.slice(-2000)}`);
    return Number(m[1]);
  };
  // per-query lines: "> NOERROR svc-00001 A 0.000123" ("> T …" for a timeout, without latency)
  const latencies = new Float64Array(text.length / 20);
  let n = 0;
  let notNoerror = 0;
  for (let at = text.indexOf("\n> "); at !== -1; at = text.indexOf("\n> ", at + 1)) {
    const end = text.indexOf("\n", at + 1);
    const line = text.slice(at + 3, end === -1 ? text.length : end);
    const rcode = line.slice(0, line.indexOf(" "));
    if (rcode !== "NOERROR") notNoerror++;
    if (rcode === "T" || rcode === "I") continue;
    latencies[n++] = Number(line.slice(line.lastIndexOf(" ") + 1)) * 1000;
  }
  const sorted = latencies.subarray(0, n).sort();
  return {
    qps: num("Queries per second"),
    sent: num("Queries sent"),
    completed: num("Queries completed"),
    lost: num("Queries lost"),
    notNoerror,
    p50Ms: pct(sorted, 50),
    p99Ms: pct(sorted, 99),
    avgMs: num("Average Latency \\(s\\)") * 1000,
    maxMs: n ? sorted[n - 1]! : 0,
    othersPct,
  };
}

// ---- the servers

async function startEmbedded(records: DnsRecords): Promise<void> {
  embedded = new EmbeddedDns({ upstreams: [], address: EMBEDDED_ADDR, log: (line) => process.stderr.write(`embedded dns: ${line}\n`) });
  await embedded.attach(NS_AGENT, records);
}

async function startDnsmasq(hostsFile: string): Promise<ChildProcess> {
  const args = [
    "-k", // foreground, our child
    "--conf-file=/dev/null",
    "--no-resolv",
    "--no-hosts",
    `--addn-hosts=${hostsFile}`,
    `--listen-address=${DNSMASQ_ADDR}`,
    "--bind-interfaces",
    "--port=53",
    "--cache-size=10000",
    "--local-ttl=2",
    "--log-facility=-",
    "--pid-file=",
    "--user=root",
  ];
  const child = track(spawn("ip", ["netns", "exec", NS_DNSMASQ, ...(pin ? ["taskset", "-c", "0"] : []), "dnsmasq", ...args], { stdio: ["ignore", "ignore", "pipe"] }));
  let log = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`dnsmasq did not read its hosts file within 10 s:\n${log}`)), 10_000);
    child.stderr!.on("data", (b: Buffer) => {
      log += b.toString();
      if (/read .* - \d+ names/.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`dnsmasq exited with ${code}:\n${log}`));
    });
  });
  child.stderr!.resume();
  return child;
}

/** Node's UDP floor: each query straight back, QR set (NOERROR, no answers). */
async function startFloor(): Promise<ChildProcess> {
  const script = `
    const s = require("node:dgram").createSocket("udp4");
    s.on("message", (m, r) => { m[2] |= 0x80; s.send(m, r.port, r.address); });
    s.bind(53, "${FLOOR_ADDR}", () => process.stdout.write("ready\\n"));`;
  const child = track(spawn("ip", ["netns", "exec", NS_AGENT, ...(pin ? ["taskset", "-c", "0"] : []), process.execPath, "-e", script], { stdio: ["ignore", "pipe", "inherit"] }));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once("data", () => resolve());
    child.on("exit", (code) => reject(new Error(`the floor server exited with ${code}`)));
  });
  return child;
}

// ---- the report

function versions(): Record<string, string> {
  const first = (cmd: string, args: string[], re: RegExp): string => {
    try {
      return re.exec(execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }))?.[1] ?? "?";
    } catch (e) {
      const out = `${(e as { stdout?: string }).stdout ?? ""}${(e as { stderr?: string }).stderr ?? ""}`;
      return re.exec(out)?.[1] ?? "?";
    }
  };
  let commit = "?";
  try {
    commit = sh("git", ["rev-parse", "--short", "HEAD"]).trim() + (sh("git", ["status", "--porcelain", "--untracked-files=no"]).trim() ? "+changes" : "");
  } catch {
    // not a checkout
  }
  return {
    node: process.version,
    kernel: release(),
    cpu: cpus()[0]?.model ?? "?",
    dnsperf: first("dnsperf", ["-h"], /Version (\S+)/),
    dnsmasq: first("dnsmasq", ["--version"], /version (\S+)/),
    commit,
  };
}

const ms = (x: number) => `${x.toFixed(3)} ms`;
const perCpuSecond = (r: Run) => r.qps / Math.max(r.serverPct / 100, 1e-9);
const answeredBy = (p: { replayed: number; javascript: number; dropped: number }) =>
  [p.replayed, p.javascript, p.dropped].map((n) => n.toLocaleString("en-US")).join(" / ");
const qps = (x: number) => `${Math.round(x).toLocaleString("en-US")} q/s`;

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("namespaces need root");
  ensureTools();
  const v = versions();
  const started = new Date();
  if (pin) sh("taskset", ["-a", "-p", "-c", "0", String(process.pid)]);

  process.stderr.write(`building records for ${SERVICES} services…\n`);
  const c = cluster();
  const t0 = performance.now();
  const records = dnsRecordsFor(c.view, new Set([NET]));
  const buildMs = performance.now() - t0;
  if (records.names.size !== c.names.length) throw new Error(`expected ${c.names.length} names, dnsRecordsFor gave ${records.names.size}`);

  workDir = mkdtempSync(join(tmpdir(), "vmbench-dns-"));
  chmodSync(workDir, 0o755);
  const hostsFile = join(workDir, "hosts");
  writeFileSync(hostsFile, c.hosts);
  const queryFile = join(workDir, "queries");
  const random = seededRandom(1);
  const order = [...c.names];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  writeFileSync(queryFile, order.map((n) => `${n} A\n`).join(""));

  addNamespace(NS_AGENT);
  addNamespace(NS_DNSMASQ);
  await startEmbedded(records);
  const dnsmasq = await startDnsmasq(hostsFile);
  const floorServer = await startFloor();

  type Server = "embedded" | "dnsmasq";
  let floor: Run | undefined;
  const servers: [Server, string, string, number | undefined][] = [
    ["embedded", NS_AGENT, EMBEDDED_ADDR, undefined],
    ["dnsmasq", NS_DNSMASQ, DNSMASQ_ADDR, dnsmasq.pid],
  ];
  const results: Record<Server, { saturated?: Run; fixed?: Run }> = { embedded: {}, dnsmasq: {} };
  /** Of the embedded DNS's answers in each measured run: replayed by replay.c, or answered in JavaScript. */
  const paths: Partial<Record<"saturated" | "fixed" | "first", { replayed: number; javascript: number; dropped: number }>> = {};
  const measured = async <T>(phase: keyof typeof paths, run: () => Promise<T>): Promise<T> => {
    const before = embedded!.stats(NS_AGENT);
    const out = await run();
    const after = embedded!.stats(NS_AGENT);
    paths[phase] = { replayed: after.hits - before.hits, javascript: after.misses - before.misses, dropped: after.dropped - before.dropped };
    return out;
  };
  for (const phase of ["saturated", "fixed"] as const) {
    for (const [server, ns, addr, pid] of servers) {
      if (phase === "fixed" && server === "embedded") {
        process.stderr.write(`node's UDP floor: saturated, ${WARMUP_S} s warm-up + ${SECONDS} s…\n`);
        await dnsperf(NS_AGENT, FLOOR_ADDR, queryFile, WARMUP_S, undefined, floorServer.pid);
        floor = await dnsperf(NS_AGENT, FLOOR_ADDR, queryFile, SECONDS, undefined, floorServer.pid);
      }
      process.stderr.write(`${server}: ${phase}, ${phase === "saturated" ? "one pass over the names" : `${WARMUP_S} s`} to warm up + ${SECONDS} s…\n`);
      const rate = phase === "fixed" ? FIXED_QPS : undefined;
      // saturated: every name asked once first, as a running cluster's clients have asked theirs (the
      // embedded DNS's first answers are measured on their own below); fixed: the servers are warm by then
      await dnsperf(ns, addr, queryFile, phase === "saturated" ? { passes: 1 } : WARMUP_S, rate, pid);
      const run = () => dnsperf(ns, addr, queryFile, SECONDS, rate, pid);
      results[server][phase] = server === "embedded" ? await measured(phase, run) : await run();
    }
  }
  // every query a name's first since its records changed (new records object, as after a view change): all in JavaScript
  process.stderr.write(`embedded: first queries, one pass over ${c.names.length} names…\n`);
  await embedded!.attach(NS_AGENT, { ...records });
  const first = await measured("first", () => dnsperf(NS_AGENT, EMBEDDED_ADDR, queryFile, { passes: 1 }, undefined, undefined));
  await shutdown();

  const e = results.embedded as Required<(typeof results)["embedded"]>;
  const d = results.dnsmasq as Required<(typeof results)["dnsmasq"]>;
  const rows: [string, string, string, string][] = [];
  const row = (label: string, a: string, b: string, ratio: number) => rows.push([label, a, b, `${ratio.toFixed(2)}×`]);
  for (const phase of ["saturated", "fixed"] as const) {
    const [a, b] = [e[phase], d[phase]];
    rows.push([phase === "saturated" ? `saturated, ${SECONDS} s (≤ ${IN_FLIGHT} in flight)` : `fixed ${FIXED_QPS.toLocaleString("en-US")} q/s offered, ${SECONDS} s`, "", "", ""]);
    row("  queries/s", qps(a.qps), qps(b.qps), a.qps / b.qps);
    // what the server could answer with its core to itself: the pace is dnsperf's when dnsperf is the one at ~100 %
    row("  per server CPU-second", qps(perCpuSecond(a)), qps(perCpuSecond(b)), perCpuSecond(a) / perCpuSecond(b));
    row("  latency p50", ms(a.p50Ms), ms(b.p50Ms), a.p50Ms / b.p50Ms);
    row("  latency p99", ms(a.p99Ms), ms(b.p99Ms), a.p99Ms / b.p99Ms);
    row("  latency average", ms(a.avgMs), ms(b.avgMs), a.avgMs / b.avgMs);
    rows.push(["  lost / not NOERROR", `${a.lost} / ${a.notNoerror}`, `${b.lost} / ${b.notNoerror}`, ""]);
    rows.push(["  CPU: server / dnsperf (of one core)", `${a.serverPct.toFixed(0)}% / ${a.dnsperfPct.toFixed(0)}%`, `${b.serverPct.toFixed(0)}% / ${b.dnsperfPct.toFixed(0)}%`, ""]);
    rows.push(["  other processes' CPU", `${a.othersPct.toFixed(0)}%`, `${b.othersPct.toFixed(0)}%`, ""]);
    rows.push(["  replayed / in JavaScript / dropped", answeredBy(paths[phase]!), "", ""]);
  }
  rows.push([`first queries, 1 pass over ${c.names.length.toLocaleString("en-US")} names`, "", "", ""]);
  rows.push(["  queries/s (all in JavaScript)", qps(first.qps), "", ""]);
  rows.push(["  latency p50 / p99", `${ms(first.p50Ms)} / ${ms(first.p99Ms)}`, "", ""]);
  rows.push(["  replayed / in JavaScript / dropped", answeredBy(paths.first!), "", ""]);
  const w = [38, 18, 18, 18];
  const fmt = (r: string[]) => r.map((x, i) => (i === 0 ? x.padEnd(w[i]!) : x.padStart(w[i]!))).join("");

  console.log(`vipmesh DNS benchmark — ${started.toISOString()}${quick ? " (--quick)" : ""}`);
  console.log(`machine: ${cpus().length} CPUs (${v.cpu}), Linux ${v.kernel}, load average ${readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ")} at the end`);
  console.log(`versions: Node ${v.node}, dnsperf ${v.dnsperf}, dnsmasq ${v.dnsmasq}, vipmesh ${v.commit}`);
  console.log(`records: ${SERVICES.toLocaleString("en-US")} vip services × (VIP + ${TASKS_PER_SERVICE} tasks) on one network: ${c.names.length.toLocaleString("en-US")} names (dnsRecordsFor: ${buildMs.toFixed(0)} ms); queries: those names, A, seeded random order`);
  console.log(`load: dnsperf -T 1 -c 1 -q ${IN_FLIGHT} -v in the server's namespace${pin ? "; server on CPU 0, dnsperf on CPU 1" : " (not pinned: 1 CPU)"}; p50/p99: nearest rank over every query's latency (dnsperf -v)`);
  console.log(`embedded: EmbeddedDns at ${EMBEDDED_ADDR}:53; dnsmasq: addn-hosts, --no-resolv, cache 10000, at ${DNSMASQ_ADDR}:53`);
  console.log("");
  console.log(fmt(["", "embedded DNS", "dnsmasq", "embedded/dnsmasq"]));
  for (const r of rows) console.log(fmt(r));
  const others = Math.max(...[e, d].flatMap((x) => [x.saturated.othersPct, x.fixed.othersPct]));
  if (others > 10) console.log(`WARNING: other processes used up to ${others.toFixed(0)}% of the CPUs during a run: figures taken under load`);
  const ratio = e.saturated.qps / d.saturated.qps;
  console.log("");
  console.log(
    `Node's UDP floor (a Node process echoing each query, no DNS work; saturated, same pinning): ${qps(floor!.qps)}, ${(floor!.qps / d.saturated.qps).toFixed(2)}× dnsmasq's; ` +
      `the embedded DNS gets ${((e.saturated.qps / floor!.qps) * 100).toFixed(0)}% of it (other processes' CPU ${floor!.othersPct.toFixed(0)}%)`,
  );
  console.log(`target (issue): the embedded DNS answers at least dnsmasq's rate — ${ratio >= 1 ? "met" : "NOT met"} (${ratio.toFixed(2)}× dnsmasq's; CoreDNS: ~17 000 q/s per core)`);

  mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
  writeFileSync(
    new URL("./results/dns.json", import.meta.url),
    `${JSON.stringify({ benchmark: "dns", at: started.toISOString(), quick, cpus: cpus().length, pinned: pin, versions: v, services: SERVICES, names: c.names.length, seconds: SECONDS, fixedQps: FIXED_QPS, inFlight: IN_FLIGHT, embedded: e, embeddedFirstQueries: first, embeddedPaths: paths, dnsmasq: d, nodeUdpFloor: floor }, null, 2)}\n`,
  );
}

main()
  .catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  })
  .finally(() => shutdown());
