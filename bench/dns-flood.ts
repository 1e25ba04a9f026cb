// Benchmark (not a test): how a task's DNS answers while other tasks on its
// node flood theirs (issue 19), beside the same task's on a quiet node, in
// one run and one lab.
//
//   npm run bench:dns-flood -- [--quick]      (as root; wrap it in flock /tmp/vipmesh-kernel.lock …)
//
// A 1-node lab. The neighbour: one whoami task on network floodnet. Its probe
// (@vipmesh/testing's DNS_PROBE, run in its sandbox) asks a query every
// INTERVAL ms without waiting for the one before, each given 2 s: the cluster's
// names in turn (over UDP these are replayed by replay.c after the first),
// every 5th a name never asked before (answered in JavaScript), every 4th over
// TCP (Node's event loop, a connection each).
// Phases:
//   1. quiet: the neighbour alone on the node — the baseline;
//   2. flood: on the same node, six tasks each holding as many TCP connections
//      to their DNS as they can, trickling bytes (DNS_FLOOD tcp), and one
//      flooding it with UDP queries for new names (DNS_FLOOD udp); measured
//      once every one of them is in full swing.
// Reported per phase: latency p50/p99/max and the fraction answered within
// 2 s, overall and per path; the agent's peak open descriptors against base +
// sandboxes × SANDBOX_DESCRIPTORS; what the flood did meanwhile (connections
// the agent closed, UDP queries sent and answered, per second); and how busy
// the machine's CPUs were (the 2 cores are shared: the flood takes all it can).
// The numbers also go to bench/results/dns-flood.json.

import { call, type ClusterServiceClient, type wire } from "@vipmesh/api";
import { SANDBOX_DESCRIPTORS } from "@vipmesh/agent";
import { type LabLayout, agentPid, labClient, labDown, labUp, listNamespaces } from "@vipmesh/lab";
import { DNS_FLOOD, DNS_PROBE, type DnsProbeResult, floodCounts, waitFor } from "@vipmesh/testing";
import { execFile } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const quick = process.argv.includes("--quick");
const QUERIES = quick ? 200 : 600;
const INTERVAL_MS = quick ? 50 : 25;
const TIMEOUT_MS = 2000;
const HOGS = 6;
const LAB = "dnsflood";
const NAMES = ["quiet", "tcphog", "udpflood", "tasks.quiet"];

const pct = (xs: number[], p: number) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.max(0, Math.ceil((p / 100) * xs.length) - 1))]! : Number.NaN);

/** Busy CPU time of the whole machine, ms (/proc/stat; USER_HZ 100). */
function machineBusyMs(): number {
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0] = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  return (user + nice + system + irq + softirq) * 10;
}

interface Path {
  queries: number;
  answered: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

interface Phase extends Path {
  /** Of the queries, by path: UDP of a name asked before (replayed), UDP of a new name (JavaScript), TCP. */
  paths: Record<"udpReplayed" | "udpNew" | "tcp", Path>;
  /** Answers that were wrong (rcode or addresses). */
  wrong: number;
  /** Every CPU's busy share meanwhile, %. */
  machineCpuPct: number;
}

function summarize(rs: DnsProbeResult[]): Path {
  const ms = rs.flatMap((r) => (r.ms === null ? [] : [r.ms]));
  return { queries: rs.length, answered: ms.length, p50Ms: pct(ms, 50), p99Ms: pct(ms, 99), maxMs: ms.length ? Math.max(...ms) : Number.NaN };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("the lab needs root");
  labDown(LAB);
  process.stderr.write("bringing up a 1-node lab…\n");
  const lab: LabLayout = await labUp({ name: LAB, nodes: 1 });
  const client: ClusterServiceClient = labClient(lab);
  try {
    const node = lab.nodes[0]!;
    const running = (service: string, n: number) =>
      waitFor(
        `${n} running tasks of ${service}`,
        async () => {
          const up = (await call(client, "listTasks", { service })).tasks.filter((t) => t.desiredState === "running" && t.status?.state === "running");
          return up.length === n ? up : undefined;
        },
        60_000,
        100,
      );
    const service = async (name: string, replicas: number, command: string[]) =>
      (
        await call(client, "createService", {
          spec: {
            annotations: { name },
            taskTemplate: { container: { command }, placement: { constraints: [`node.hostname==${node.hostname}`] } },
            replicated: { replicas },
            networks: [{ target: "floodnet" }],
          },
        })
      ).service!;
    const sandboxOf = (t: wire.Task) => listNamespaces().find((ns) => ns.startsWith(lab.prefix) && ns.endsWith(t.id))!;
    const countsOf = (t: wire.Task): Record<string, number> => floodCounts(join(node.stateDir, "tasks", t.id, "log")) ?? {};
    const agent = agentPid(lab, node.hostname);
    if (agent === undefined) throw new Error(`${node.hostname}'s agent is not running`);
    const descriptors = () => readdirSync(`/proc/${agent}/fd`).length;

    await call(client, "createNetwork", { spec: { name: "floodnet" } });
    // every service (and so every name the probe asks) exists from the start: the phases differ by the flood alone
    const quietSvc = await service("quiet", 1, ["vipmesh", "whoami", "--port", "8080"]);
    const hogSvc = await service("tcphog", 0, ["node", DNS_FLOOD, "tcp"]);
    const floodSvc = await service("udpflood", 0, ["node", DNS_FLOOD, "udp"]);
    const [quiet] = await running("quiet", 1);
    const neighbour = sandboxOf(quiet!);
    const vip = (s: wire.Service) => s.endpoint!.virtualIps[0]!.addr.split("/")[0]!;
    const expected = new Map([
      ["quiet", [vip(quietSvc)]],
      ["tcphog", [vip(hogSvc)]],
      ["udpflood", [vip(floodSvc)]],
      ["tasks.quiet", [quiet!.networks[0]!.addresses[0]!.split("/")[0]!]],
    ]);
    const probe = async (count: number): Promise<DnsProbeResult[]> => {
      const { stdout } = await promisify(execFile)("ip", ["netns", "exec", neighbour, process.execPath, DNS_PROBE, String(count), String(INTERVAL_MS), String(TIMEOUT_MS), NAMES.join(",")], {
        timeout: count * INTERVAL_MS + 60_000,
      });
      return JSON.parse(stdout) as DnsProbeResult[];
    };
    await waitFor("the neighbour's DNS answering", async () => (await probe(4)).every((r) => r.rcode === "NOERROR" || r.rcode === "NXDOMAIN"), 30_000, 200);

    const measure = async (label: string): Promise<Phase> => {
      process.stderr.write(`${label}: ${QUERIES} queries, one every ${INTERVAL_MS} ms…\n`);
      const [busy0, t0] = [machineBusyMs(), performance.now()];
      const rs = await probe(QUERIES);
      const machineCpuPct = ((machineBusyMs() - busy0) / ((performance.now() - t0) * cpus().length)) * 100;
      const fresh = (r: DnsProbeResult) => r.name.startsWith("probe-");
      const wrong = rs.filter((r) => r.ms !== null && (fresh(r) ? r.rcode !== "NXDOMAIN" : r.rcode !== "NOERROR" || r.addrs.join() !== expected.get(r.name)!.join())).length;
      return {
        ...summarize(rs),
        paths: {
          udpReplayed: summarize(rs.filter((r) => r.proto === "udp" && !fresh(r))),
          udpNew: summarize(rs.filter((r) => r.proto === "udp" && fresh(r))),
          tcp: summarize(rs.filter((r) => r.proto === "tcp")),
        },
        wrong,
        machineCpuPct,
      };
    };

    // 1. quiet
    await new Promise((r) => setTimeout(r, 2000));
    const baseSamples: number[] = [];
    for (let i = 0; i < 10; i++) {
      baseSamples.push(descriptors());
      await new Promise((r) => setTimeout(r, 100));
    }
    const base = Math.min(...baseSamples);
    const quietPhase = await measure("quiet");

    // 2. flood
    process.stderr.write(`starting ${HOGS} TCP hogs and a UDP flood…\n`);
    const scale = async (s: wire.Service, replicas: number) => {
      const now = (await call(client, "inspectService", { service: s.spec!.annotations!.name })).service!;
      await call(client, "updateService", { service: now.id, version: now.version, spec: { ...now.spec!, replicated: { replicas } } });
    };
    await scale(hogSvc, HOGS);
    await scale(floodSvc, 1);
    const hogs = await running("tcphog", HOGS);
    const [flood] = await running("udpflood", 1);
    await waitFor("the flood in full swing", () => hogs.every((h) => (countsOf(h).closed ?? 0) > 200) && (countsOf(flood!).sent ?? 0) > 5000, 60_000, 200);
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, descriptors());
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const before = { closed: hogs.map((h) => countsOf(h).closed ?? 0), flood: countsOf(flood!), at: Date.now() };
    const floodPhase = await measure("flood");
    sampling = false;
    await sampler;
    // its supervisor would have started another agent had this one ended
    const sameAgent = agentPid(lab, node.hostname) === agent;
    const seconds = (Date.now() - before.at) / 1000;
    const after = { closed: hogs.map((h) => countsOf(h).closed ?? 0), flood: countsOf(flood!) };
    const flooding = {
      tcpClosedPerS: after.closed.reduce((n, c, i) => n + c - before.closed[i]!, 0) / seconds,
      udpSentPerS: ((after.flood.sent ?? 0) - (before.flood.sent ?? 0)) / seconds,
      udpAnsweredPerS: ((after.flood.answered ?? 0) - (before.flood.answered ?? 0)) / seconds,
    };
    const bound = base + (HOGS + 1) * SANDBOX_DESCRIPTORS;

    // the report
    const ms = (x: number) => (Number.isNaN(x) ? "—" : `${x.toFixed(2)} ms`);
    const share = (p: Path) => `${((p.answered / p.queries) * 100).toFixed(1)} % of ${p.queries}`;
    const w = [36, 24, 24, 14];
    const row = (cells: string[]) => console.log(cells.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join(""));
    const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(1)}×` : "");
    console.log(`vipmesh DNS under a flood — ${new Date().toISOString()}${quick ? " (--quick)" : ""}`);
    console.log(`machine: ${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), Linux ${release()}, Node ${process.version}`);
    console.log(
      `a 1-node lab; the neighbour asks ${QUERIES} queries, one every ${INTERVAL_MS} ms, each given ${TIMEOUT_MS} ms: ${NAMES.join(", ")} in turn, every 5th a new name, every 4th over TCP`,
    );
    console.log(`flood: ${HOGS} tasks holding all the TCP connections to their DNS they can, trickling, and 1 flooding UDP queries for new names, on the same node`);
    console.log("");
    row(["", "quiet node (baseline)", "under the flood", "flood/quiet"]);
    const rows = (label: string, q: Path, f: Path) => {
      row([label, "", "", ""]);
      row(["  answered within 2 s", share(q), share(f), ""]);
      row(["  latency p50", ms(q.p50Ms), ms(f.p50Ms), ratio(f.p50Ms, q.p50Ms)]);
      row(["  latency p99", ms(q.p99Ms), ms(f.p99Ms), ratio(f.p99Ms, q.p99Ms)]);
      row(["  latency max", ms(q.maxMs), ms(f.maxMs), ratio(f.maxMs, q.maxMs)]);
    };
    rows("every query", quietPhase, floodPhase);
    rows("UDP, a name asked before (replayed)", quietPhase.paths.udpReplayed, floodPhase.paths.udpReplayed);
    rows("UDP, a new name (JavaScript)", quietPhase.paths.udpNew, floodPhase.paths.udpNew);
    rows("TCP (a connection each)", quietPhase.paths.tcp, floodPhase.paths.tcp);
    row(["wrong answers", String(quietPhase.wrong), String(floodPhase.wrong), ""]);
    row(["CPU busy, all cores", `${quietPhase.machineCpuPct.toFixed(0)} %`, `${floodPhase.machineCpuPct.toFixed(0)} %`, ""]);
    console.log("");
    console.log(
      `the flood meanwhile: ${Math.round(flooding.tcpClosedPerS).toLocaleString("en-US")} TCP connections/s closed by the agent, ` +
        `${Math.round(flooding.udpSentPerS).toLocaleString("en-US")} UDP queries/s sent, ${Math.round(flooding.udpAnsweredPerS).toLocaleString("en-US")}/s answered`,
    );
    console.log(
      `the agent's descriptors: ${base} before the flood, at most ${peak} during it; bound ${bound} = ${base} + ${HOGS + 1} sandboxes × ${SANDBOX_DESCRIPTORS} (${peak <= bound ? "within" : "NOT within"}); ` +
        `${sameAgent ? "the same agent process throughout" : "the agent was RESTARTED"}`,
    );

    mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
    writeFileSync(
      new URL("./results/dns-flood.json", import.meta.url),
      `${JSON.stringify({ benchmark: "dns-flood", at: new Date().toISOString(), quick, cpus: cpus().length, queries: QUERIES, intervalMs: INTERVAL_MS, timeoutMs: TIMEOUT_MS, hogs: HOGS, quiet: quietPhase, flood: floodPhase, flooding, descriptors: { base, peak, bound, perSandbox: SANDBOX_DESCRIPTORS }, sameAgent }, null, 2)}\n`,
    );
  } finally {
    client.close();
    labDown(LAB);
  }
}

main().catch((err) => {
  labDown(LAB);
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
