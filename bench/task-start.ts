// Benchmark (not a test): task start time in a real 3-node lab, containers
// beside processes, in one run (issue 22). Each round creates a 3-replica
// service with a published port — the lab's sample image (busybox httpd, run
// by each node's containerd) and a process service (`vipmesh whoami`),
// alternately — and times from the CreateService call:
//
//   running: until all three tasks are reported running;
//   in every LB: until every node's routing mesh balances to all three (each
//     node's ingress sandbox's nftables backends, read back from its kernel).
//
// Then the service is removed and its tasks' sandboxes waited out before the next.
//
//   npm run bench -- task-start [--quick]      (as root)
//   npx tsx bench/task-start.ts [--rounds N] [--quick]
//
// Percentiles are nearest-rank. Results: stdout, and bench/results/task-start.json.

import { call, type ClusterServiceClient, type wire } from "@vipmesh/api";
import { addrOf } from "@vipmesh/core";
import { type LabLayout, labClient, labDown, labUp, listNamespaces, SAMPLE_IMAGE, sampleImageArchive } from "@vipmesh/lab";
import { waitFor } from "@vipmesh/testing";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ms, numberFlag, summarize } from "./lib/samples.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const VIPMESH = join(ROOT, "bin/vipmesh");
const LAB = "tstart";
const REPLICAS = 3;
const PORT = 8080;
/** How often the LB state and task states are read while a round runs. */
const POLL_MS = 20;

const quick = process.argv.includes("--quick");
const rounds = numberFlag("--rounds", quick ? 3 : 10);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error("--rounds wants a whole number ≥ 1");

type Runtime = "container" | "process";
const TEMPLATES: Record<Runtime, object> = {
  container: { container: { image: SAMPLE_IMAGE } },
  process: { container: { command: ["vipmesh", "whoami", "--port", "80"] } },
};

/** p95 by the same nearest rank as summarize's. */
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.max(0, Math.ceil(0.95 * xs.length) - 1)] ?? Number.NaN;
const stats = (xs: number[]) => ({ ...summarize(xs), p95Ms: p95(xs) });

/** Every address `t` has on any network: its ingress one is what the mesh balances to. */
const addrsOf = (t: wire.Task) => t.networks.flatMap((n) => n.addresses.map(addrOf));

/** Whether every node's ingress sandbox balances to each of `tasks` (an address of it among its nftables backends). */
function inEveryLb(lab: LabLayout, tasks: wire.Task[]): boolean {
  return lab.nodes.every((n) => {
    let map: string;
    try {
      map = execFileSync("ip", ["netns", "exec", `${n.netns}-ingress`, "nft", "-j", "list", "map", "ip", "vipmesh", "be"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    } catch {
      return false; // no ingress sandbox yet
    }
    return tasks.every((t) => addrsOf(t).some((a) => map.includes(`"${a}"`)));
  });
}

/** One round: create, time to running and to every node's LB, then remove and wait until nothing of it is left. */
async function round(lab: LabLayout, client: ClusterServiceClient, runtime: Runtime, i: number): Promise<{ runningMs: number; lbMs: number }> {
  const service = `${runtime}${i}`;
  const t0 = performance.now();
  await call(client, "createService", {
    spec: { annotations: { name: service }, taskTemplate: TEMPLATES[runtime], replicated: { replicas: REPLICAS }, endpointSpec: { ports: [{ targetPort: 80, publishedPort: PORT }] } },
  });
  const tasks = await waitFor(
    `${service}'s ${REPLICAS} tasks running`,
    async () => {
      const { tasks } = await call(client, "listTasks", { service });
      const failed = tasks.find((t) => ["failed", "rejected"].includes(t.status?.state ?? ""));
      if (failed) throw new Error(`${service}: task ${failed.id} ${failed.status?.state}: ${failed.status?.err}`);
      const up = tasks.filter((t) => t.status?.state === "running");
      return up.length === REPLICAS ? up : undefined;
    },
    120_000,
    POLL_MS,
  );
  const runningMs = performance.now() - t0;
  await waitFor(`${service} in every node's LB`, () => inEveryLb(lab, tasks), 60_000, POLL_MS);
  const lbMs = performance.now() - t0;
  await call(client, "removeService", { service });
  await waitFor(`${service}'s sandboxes gone`, () => !listNamespaces().some((ns) => tasks.some((t) => ns.endsWith(t.id))), 60_000, 100);
  return { runningMs, lbMs };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("the lab needs root");
  labDown(LAB);
  process.stderr.write("bringing up a 3-node lab, a containerd per node…\n");
  const lab = await labUp({ name: LAB, nodes: 3 });
  const client = labClient(lab);
  const dir = mkdtempSync(join(tmpdir(), "vipmesh-bench-"));
  try {
    const archive = join(dir, "collabweb.tar");
    writeFileSync(archive, sampleImageArchive());
    execFileSync(VIPMESH, ["--host", lab.socket, "--tls-dir", lab.tlsDir, "image", "load", archive], { stdio: ["ignore", "ignore", "inherit"] });
    // one untimed round of each: the first start pays for loading code and caches
    for (const runtime of ["container", "process"] as const) await round(lab, client, runtime, 0);

    const samples: Record<Runtime, { runningMs: number[]; lbMs: number[] }> = { container: { runningMs: [], lbMs: [] }, process: { runningMs: [], lbMs: [] } };
    for (let i = 1; i <= rounds; i++) {
      for (const runtime of ["container", "process"] as const) {
        process.stderr.write(`\rround ${i}/${rounds} ${runtime}  `);
        const r = await round(lab, client, runtime, i);
        samples[runtime].runningMs.push(r.runningMs);
        samples[runtime].lbMs.push(r.lbMs);
      }
    }
    process.stderr.write("\n");
    const result = {
      benchmark: "task-start",
      date: new Date().toISOString(),
      cpus: cpus().length,
      nodes: lab.nodes.length,
      replicas: REPLICAS,
      rounds,
      container: { running: stats(samples.container.runningMs), lb: stats(samples.container.lbMs) },
      process: { running: stats(samples.process.runningMs), lb: stats(samples.process.lbMs) },
    };
    console.log(`task start, create → ${REPLICAS} tasks running → in every node's LB — ${result.date}, 3-node lab, ${rounds} rounds each`);
    for (const runtime of ["container", "process"] as const) {
      for (const [what, s] of [["running", result[runtime].running], ["in every LB", result[runtime].lb]] as const) {
        console.log(`${`${runtime} (${runtime === "container" ? SAMPLE_IMAGE : "vipmesh whoami"})`.padEnd(38)} ${what.padEnd(12)} p50 ${ms(s.p50Ms).padStart(10)}   p95 ${ms(s.p95Ms).padStart(10)}   max ${ms(s.maxMs).padStart(10)}`);
      }
    }
    mkdirSync(join(ROOT, "bench/results"), { recursive: true });
    writeFileSync(join(ROOT, "bench/results/task-start.json"), `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    client.close();
    labDown(LAB);
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  labDown(LAB);
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
