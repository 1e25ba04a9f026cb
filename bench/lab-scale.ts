// Benchmark (not a test): in a real 3-node lab, the time from `service scale`
// (the UpdateService call) to the new task being reachable over the overlay
// from a task on another node — scheduling, the agent's sandbox and VXLAN
// plumbing, the process start and its listen. Baseline from the same run: the
// same probe against a task that already listens (what the measurement itself costs).
//
//   npx tsx bench/lab-scale.ts [--runs 20]      (as root)

import { call, clusterClient, type wire } from "@vipmesh/api";
import { addrOf } from "@vipmesh/core";
import { type LabLayout, labDown, labUp, listNamespaces } from "@vipmesh/lab";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

const runs = Number(process.argv[process.argv.indexOf("--runs") + 1] || 20);
const PROBE = fileURLToPath(new URL("./reach-probe.mjs", import.meta.url));
const LAB = "bench";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;

/** Wall-clock time at which `from`'s sandbox first connected to addr:8080. */
function probe(lab: LabLayout, from: wire.Task, addr: string): Promise<number> {
  const sandbox = listNamespaces().find((ns) => ns.startsWith(lab.prefix) && ns.endsWith(from.id))!;
  return new Promise((resolve, reject) =>
    execFile("ip", ["netns", "exec", sandbox, "node", PROBE, addr, "8080"], (err, stdout) =>
      err ? reject(new Error(`${from.id} never reached ${addr}`)) : resolve(Number(stdout.trim())),
    ),
  );
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("the lab needs root");
  labDown(LAB);
  process.stderr.write("bringing up a 3-node lab…\n");
  const lab = await labUp({ name: LAB, nodes: 3 });
  const client = clusterClient(lab.socket);
  try {
    await call(client, "createNetwork", { spec: { name: "benchnet", ipam: [{ subnet: "10.0.3.0/24" }] } });
    const spec = {
      annotations: { name: "web" },
      taskTemplate: { container: { command: ["vipmesh", "whoami", "--port", "8080"] } },
      replicated: { replicas: 1 },
      networks: [{ target: "benchnet" }],
    };
    await call(client, "createService", { spec });
    const tasks = async () => (await call(client, "listTasks", { service: "web" })).tasks;
    const live = async () => (await tasks()).filter((t) => t.desiredState === "running" && t.status?.state === "running");
    while ((await live()).length !== 1) await sleep(20);
    const [anchor] = await live();
    await probe(lab, anchor!, addrOf(anchor!.networks[0]!.addresses[0]!)); // it listens

    const scaleTo = async (replicas: number) => {
      const s = (await call(client, "inspectService", { service: "web" })).service!;
      await call(client, "updateService", { service: "web", version: s.version, spec: { ...s.spec!, replicated: { replicas } } });
    };
    const samples: number[] = [];
    const baseline: number[] = [];
    for (let i = 0; i < runs; i++) {
      process.stderr.write(`\rrun ${i + 1}/${runs}`);
      const known = new Set((await tasks()).map((t) => t.id));
      const t0 = Date.now();
      await scaleTo(2);
      let fresh: wire.Task | undefined;
      while (!fresh) {
        fresh = (await tasks()).find((t) => !known.has(t.id) && t.networks[0]?.addresses[0] && t.nodeId);
        if (!fresh) await sleep(2);
      }
      // reachable from the anchor's node, across the overlay (spread puts it on another node)
      const reachedAt = await probe(lab, anchor!, addrOf(fresh.networks[0]!.addresses[0]!));
      samples.push(reachedAt - t0);
      const b0 = Date.now();
      baseline.push((await probe(lab, anchor!, addrOf(fresh.networks[0]!.addresses[0]!))) - b0);
      await scaleTo(1);
      while ((await tasks()).some((t) => t.id === fresh!.id && !["shutdown", "failed", "complete"].includes(t.status!.state))) await sleep(20);
    }
    process.stderr.write("\n");
    const line = (label: string, xs: number[]) =>
      `${label.padEnd(44)} median ${pct(xs, 50).toFixed(0).padStart(5)} ms   p99 ${pct(xs, 99).toFixed(0).padStart(5)} ms   (n=${xs.length})`;
    console.log(`vipmesh lab scale benchmark — ${new Date().toISOString()}, 3-node lab, whoami (vipmesh whoami under tsx)`);
    console.log(line("scale → new task reachable across nodes", samples));
    console.log(line("baseline: same probe, task already listening", baseline));
    console.log(`the probe itself costs ${(pct(baseline, 50) / pct(samples, 50) * 100).toFixed(0)}% of the median`);
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
