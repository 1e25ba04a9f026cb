// Benchmark (not a test): convergence in a real 3-node lab, from `service scale`
// (the UpdateService call) to every node having applied it.
//
//   scale-down 3 → 2: until no sandbox on any node balances to, or resolves,
//     the removed task (its nftables backend and DNS entry gone everywhere);
//   scale-up 2 → 3: until every sandbox balances to and resolves the new task —
//     split into the task's start (scheduling, sandbox, process: until it is
//     reported running) and the propagation of that to every node — and until
//     the new task is reachable over VXLAN from a task on another node.
//
// Observers: a global service puts one task on every node (3 by default, --nodes); in each, a probe
// (dns-watch.mjs) asks the embedded DNS for tasks.web every 5 ms. The agent
// publishes a sandbox's records right after its nftables rules are applied,
// so a changed answer means both are; after every sample the rules are read
// back from each observer's kernel (untimed) to check it. Baselines from the
// same run: the UpdateService round trip alone, and the reachability probe
// against a task that already listens (what the measurements themselves cost).
// Targets (issue 4): scale → rules and DNS on every node p50 ≤ 100 ms, p99 ≤ 300 ms.
//
//   npm run bench:lab -- [--runs 20] [--nodes 3]      (as root)
//
// The numbers also go to bench/results/lab-<nodes>.json.

import { call, type ClusterServiceClient, type wire } from "@vipmesh/api";
import { addrOf } from "@vipmesh/core";
import { type LabLayout, labClient, labDown, labUp, listNamespaces } from "@vipmesh/lab";
import { waitFor } from "@vipmesh/testing";
import { type ChildProcess, execFile, execFileSync, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";

const option = (name: string, fallback: number) => (process.argv.includes(name) ? Number(process.argv[process.argv.indexOf(name) + 1]) : fallback);
const runs = option("--runs", 20);
const NODES = option("--nodes", 3);
if (!Number.isInteger(runs) || runs < 1 || !Number.isInteger(NODES) || NODES < 2) throw new Error("--runs wants a whole number ≥ 1, --nodes one ≥ 2");
const REACH = fileURLToPath(new URL("./reach-probe.mjs", import.meta.url));
const WATCH = fileURLToPath(new URL("./dns-watch.mjs", import.meta.url));
const LAB = "bench";

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
const ipOf = (t: wire.Task) => addrOf(t.networks[0]!.addresses[0]!);

/** A DNS watcher in one observer sandbox: every answer it saw, with when. */
class Watcher {
  readonly seen: { at: number; addrs: string[] }[] = [];
  private readonly child: ChildProcess;
  constructor(readonly sandbox: string) {
    this.child = spawn("ip", ["netns", "exec", sandbox, "node", WATCH, "tasks.web"], { stdio: ["ignore", "pipe", "inherit"] });
    let buf = "";
    this.child.stdout!.on("data", (d: Buffer) => {
      buf += d;
      const lines = buf.split("\n");
      buf = lines.pop()!;
      for (const l of lines) {
        const [at, addrs = ""] = l.split(" ");
        this.seen.push({ at: Number(at), addrs: addrs.split(",").filter(Boolean) });
      }
    });
  }
  /** When, after t0, its answers first satisfied `ok` and kept doing so; undefined while they do not. */
  since(t0: number, ok: (addrs: string[]) => boolean): number | undefined {
    const last = this.seen.at(-1);
    if (!last || !ok(last.addrs)) return undefined;
    let i = this.seen.length - 1;
    while (i > 0 && this.seen[i - 1]!.at >= t0 && ok(this.seen[i - 1]!.addrs)) i--;
    return Math.max(t0, this.seen[i]!.at);
  }
  stop(): void {
    this.child.kill();
  }
}

/** Wall-clock time at which `sandbox` first connected to addr:8080. */
function reach(sandbox: string, addr: string): Promise<number> {
  return new Promise((resolve, reject) =>
    execFile("ip", ["netns", "exec", sandbox, "node", REACH, addr, "8080"], (err, stdout) =>
      err ? reject(new Error(`${sandbox} never reached ${addr}`)) : resolve(Number(stdout.trim())),
    ),
  );
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("the lab needs root");
  labDown(LAB);
  process.stderr.write(`bringing up a ${NODES}-node lab…\n`);
  const lab: LabLayout = await labUp({ name: LAB, nodes: NODES });
  const client: ClusterServiceClient = labClient(lab);
  const watchers: Watcher[] = [];
  try {
    await call(client, "createNetwork", { spec: { name: "benchnet", ipam: [{ subnet: "10.0.3.0/24" }] } });
    const whoami = { container: { command: ["vipmesh", "whoami", "--port", "8080"] } };
    await call(client, "createService", {
      spec: { annotations: { name: "web" }, taskTemplate: whoami, replicated: { replicas: 3 }, networks: [{ target: "benchnet" }] },
    });
    await call(client, "createService", {
      spec: { annotations: { name: "observer" }, taskTemplate: whoami, global: {}, networks: [{ target: "benchnet" }] },
    });
    const tasks = async (service: string) => (await call(client, "listTasks", { service })).tasks;
    const live = async (service: string) =>
      (await tasks(service)).filter((t) => t.desiredState === "running" && t.status?.state === "running");
    const settled = async (service: string, n: number) => {
      const all = await tasks(service);
      const up = all.filter((t) => t.desiredState === "running" && t.status?.state === "running");
      const stopping = all.filter((t) => t.desiredState !== "running" && !["shutdown", "failed", "complete"].includes(t.status!.state));
      return up.length === n && stopping.length === 0 ? up : undefined;
    };
    const observers = await waitFor("an observer on every node", () => settled("observer", NODES), 120_000);
    await waitFor("3 web tasks", () => settled("web", 3), 60_000);
    const sandboxOf = (t: wire.Task) => listNamespaces().find((ns) => ns.startsWith(lab.prefix) && ns.endsWith(t.id))!;
    for (const o of observers) watchers.push(new Watcher(sandboxOf(o)));
    await waitFor("every observer resolving the 3 tasks", () => (watchers.every((w) => w.seen.at(-1)?.addrs.length === 3) ? true : undefined));

    const scaleTo = async (replicas: number): Promise<number> => {
      const s = (await call(client, "inspectService", { service: "web" })).service!;
      const t0 = Date.now();
      await call(client, "updateService", { service: "web", version: s.version, spec: { ...s.spec!, replicated: { replicas } } });
      return Date.now() - t0;
    };
    /** Reads every observer's rules back: `ip` is a backend of web's VIP in each, or in none. */
    const rulesHold = (ip: string, present: boolean) =>
      watchers.every((w) => execFileSync("ip", ["netns", "exec", w.sandbox, "nft", "-j", "list", "map", "ip", "vipmesh", "be"]).includes(`"${ip}"`) === present);

    const down: number[] = [];
    const up: number[] = [];
    const start: number[] = [];
    const spread: number[] = [];
    const reachable: number[] = [];
    const api: number[] = [];
    const reachBaseline: number[] = [];
    for (let i = 0; i < runs; i++) {
      process.stderr.write(`\rrun ${i + 1}/${runs}`);
      // scale-down: the removed task leaves every observer's rules and DNS
      let t0 = Date.now();
      api.push(await scaleTo(2));
      const removed = await waitFor("a task told to stop", async () => (await tasks("web")).find((t) => t.desiredState === "shutdown" && t.status?.state === "running"));
      const gone = ipOf(removed);
      const times = await waitFor("the removed task gone everywhere", () => {
        const at = watchers.map((w) => w.since(t0, (a) => !a.includes(gone)));
        return at.every((x) => x !== undefined) ? (at as number[]) : undefined;
      });
      down.push(Math.max(...times) - t0);
      if (!rulesHold(gone, false)) throw new Error(`a removed backend ${gone} is still in some observer's rules`);
      await waitFor("scale-down settled", () => settled("web", 2));

      // scale-up: the new task starts, then every observer balances to and resolves it
      const known = new Set((await tasks("web")).map((t) => t.id));
      const anchor = (await live("web"))[0]!;
      t0 = Date.now();
      await scaleTo(3);
      const fresh = await waitFor("the new task placed", async () => (await tasks("web")).find((t) => !known.has(t.id) && t.networks[0]?.addresses[0] && t.nodeId));
      const ip = ipOf(fresh);
      const reached = reach(sandboxOf(anchor), ip);
      const upTimes = await waitFor("the new task everywhere", () => {
        const at = watchers.map((w) => w.since(t0, (a) => a.includes(ip)));
        return at.every((x) => x !== undefined) ? (at as number[]) : undefined;
      });
      const running = await waitFor("its running status", async () => {
        const t = (await tasks("web")).find((x) => x.id === fresh.id);
        return t?.status?.state === "running" ? Date.parse(t.status.timestamp) : undefined;
      });
      up.push(Math.max(...upTimes) - t0);
      start.push(running - t0);
      spread.push(Math.max(...upTimes) - running);
      reachable.push((await reached) - t0);
      if (!rulesHold(ip, true)) throw new Error(`the new backend ${ip} is missing from some observer's rules`);
      const b0 = Date.now();
      reachBaseline.push((await reach(sandboxOf(anchor), ip)) - b0);
      await waitFor("scale-up settled", () => settled("web", 3));
    }
    process.stderr.write("\n");
    const line = (label: string, xs: number[], target?: [number, number]) =>
      `${label.padEnd(58)} p50 ${pct(xs, 50).toFixed(0).padStart(5)} ms   p99 ${pct(xs, 99).toFixed(0).padStart(5)} ms` +
      (target ? `   target ≤ ${target[0]} / ≤ ${target[1]} ms: ${pct(xs, 50) <= target[0] && pct(xs, 99) <= target[1] ? "met" : "NOT met"}` : "");
    console.log(`vipmesh lab convergence — ${new Date().toISOString()}, ${NODES}-node lab, ${runs} runs, web = vipmesh whoami (under tsx)`);
    console.log(line("scale 3→2 → removed task out of rules+DNS on every node", down, [100, 300]));
    console.log(line("scale 2→3 → new task in rules+DNS on every node", up));
    console.log(line("  of which: task start (until reported running)", start));
    console.log(line("  of which: running → rules+DNS on every node", spread, [100, 300]));
    console.log(line("scale 2→3 → new task reachable across nodes (VXLAN)", reachable));
    console.log(line("baseline: the UpdateService call alone", api));
    console.log(line("baseline: reachability probe, task already listening", reachBaseline));
    console.log(
      `ratios: scale-down convergence = ${(pct(down, 50) / Math.max(1, pct(api, 50))).toFixed(1)}× the API round trip (p50); ` +
        `kube-proxy nftables (100 nodes) 1.5 s p50 / 6.8 s p99; swarm waits a fixed 2 s`,
    );
    const stats = (xs: number[]) => ({ p50: pct(xs, 50), p99: pct(xs, 99) });
    mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
    writeFileSync(
      new URL(`./results/lab-${NODES}.json`, import.meta.url),
      `${JSON.stringify({ benchmark: "lab", date: new Date().toISOString(), nodes: NODES, cpus: cpus().length, runs, scaleDownMs: stats(down), scaleUpMs: stats(up), taskStartMs: stats(start), runningToEveryNodeMs: stats(spread), reachableMs: stats(reachable), updateServiceRpcMs: stats(api), reachProbeMs: stats(reachBaseline) }, null, 2)}\n`,
    );
  } finally {
    for (const w of watchers) w.stop();
    client.close();
    labDown(LAB);
  }
}

main().catch((err) => {
  labDown(LAB);
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
