// Benchmark (not a test): new connections per second to a small HTTP task
// through the routing mesh, beside the same client connecting to the same task
// straight, in the same run.
//
//   npm run bench:mesh -- [--quick]      (as root; wrk is installed with apt-get when missing)
//
// A 2-node lab. The service `web` (one task, the project's whoami workload,
// health-checked) runs on node2 and publishes 8080 through the mesh and 9090
// in host mode. The client is the lab's client namespace on the underlay; the
// load is wrk (one thread, 64 connections, `Connection: close`: every request
// a new TCP connection, so requests/s = connections/s). Paths, same task process:
//   - straight to the task: node2:9090, host mode — one DNAT in node2's namespace
//     to the local task's gateway link: the baseline;
//   - mesh, local task: node2:8080 — node2's DNAT to the VIP, its ingress
//     sandbox's load balancing and masquerade, the task on node2;
//   - mesh, remote task: node1:8080 — the same through node1, which has no task,
//     and across the VXLAN overlay to node2.
// and, for scale, the same program run as a plain process in node2's own
// namespace (no sandbox, no NAT) at node2:18080.
// The task and that process are pinned to CPU 0, wrk to CPU 1 (2 CPUs or
// more): the server's core is what limits every path. But in a lab every
// namespace's packet work runs on whichever core handles the packet, so the
// work of node1, the underlay and the client, done on other machines in a real
// cluster, lands on the server's core as well. So each path is measured twice:
//   - shared CPU: as the lab is;
//   - one CPU per machine: receive processing of the fabric, client, node1 and
//     node1's ingress sandbox steered to CPU 1 (RPS, rps_cpus), so that CPU 0
//     does node2's work only, as node2's own CPU would.
// The client namespace reuses TIME_WAIT ports (tcp_tw_reuse=1) from the full
// port range: without, ~100k connections exhaust its ports and wrk measures
// connect()'s port search instead.
// Rounds alternate the paths; the figure is the median over rounds (3 of 5 s,
// --quick 1 of 2 s). Target (issue 5): mesh ≥ 0.9 × straight to the task.
// The numbers also go to bench/results/mesh.json.

import { call } from "@vipmesh/api";
import { labClient, labDown, labUp } from "@vipmesh/lab";
import { waitFor } from "@vipmesh/testing";
import { ensureWrk, medianRun, PINNED, wrk, type WrkRun } from "./lib/wrk.ts";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { fileURLToPath } from "node:url";

const quick = process.argv.includes("--quick");
const ROUNDS = quick ? 1 : 3;
const SECONDS = quick ? 2 : 5;
const CONNECTIONS = 64;
const LOAD = { seconds: SECONDS, connections: CONNECTIONS };
const LAB = "benchmesh";
const VIPMESH = fileURLToPath(new URL("../bin/vipmesh", import.meta.url));

const sysctls = (netns: string, settings: string[]) => execFileSync("ip", ["netns", "exec", netns, "sysctl", "-qw", ...settings]);

/** Receive processing of every interface in `netns` on the CPUs of `mask` (hex; "0": where the packet is handled). */
function steerReceive(netns: string, mask: string): void {
  execFileSync("ip", ["netns", "exec", netns, "sh", "-c", `for q in /sys/class/net/*/queues/rx-*/rps_cpus; do echo ${mask} > "$q"; done`]);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("the lab needs root");
  ensureWrk();
  labDown(LAB);
  process.stderr.write("bringing up a 2-node lab…\n");
  const lab = await labUp({ name: LAB, nodes: 2 });
  const client = labClient(lab);
  const [node1, node2] = lab.nodes as [(typeof lab.nodes)[0], (typeof lab.nodes)[0]];
  const direct = spawn("ip", ["netns", "exec", node2.netns, ...(PINNED ? ["taskset", "-c", "0"] : []), VIPMESH, "whoami", "--port", "18080"], { stdio: "ignore" });
  try {
    await call(client, "createService", {
      spec: {
        annotations: { name: "web" },
        taskTemplate: {
          container: {
            command: ["vipmesh", "whoami", "--port", "8080"],
            healthcheck: { test: ["curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:8080/"], intervalMs: 500, timeoutMs: 2000, retries: 3, startPeriodMs: 0 },
          },
          placement: { constraints: ["node.hostname==node2"] },
        },
        replicated: { replicas: 1 },
        endpointSpec: { ports: [{ targetPort: 8080, publishedPort: 8080 }, { targetPort: 8080, publishedPort: 9090, publishMode: "host" }] },
      },
    });
    const task = await waitFor("web running and healthy", async () => {
      const { tasks } = await call(client, "listTasks", { service: "web" });
      return tasks.find((t) => t.status?.state === "running" && t.status.health === "healthy");
    }, 60_000);
    if (PINNED) {
      for (const pid of execFileSync("ip", ["netns", "pids", `${node2.netns}-${task.id}`], { encoding: "utf8" }).split("\n").filter(Boolean)) {
        execFileSync("taskset", ["-acp", "0", pid], { stdio: "ignore" });
      }
    }
    sysctls(lab.client, ["net.ipv4.tcp_tw_reuse=1", "net.ipv4.ip_local_port_range=1024 65535"]);
    const paths = [
      { name: "straight to the task (node2:9090, host mode)", url: `http://${node2.addr}:9090/` },
      { name: "mesh, local task (node2:8080)", url: `http://${node2.addr}:8080/` },
      { name: "mesh, remote task (node1:8080, over VXLAN)", url: `http://${node1.addr}:8080/` },
      { name: "plain process in node2's namespace (:18080)", url: `http://${node2.addr}:18080/` },
    ];
    for (const p of paths) await waitFor(`${p.url} answers`, () => spawnSync("ip", ["netns", "exec", lab.client, "curl", "-sf", "-o", "/dev/null", p.url]).status === 0, 30_000);
    const others = [lab.fabric, lab.client, node1.netns, `${node1.netns}-ingress`];
    const models = [
      { name: "shared CPU", rps: "0" },
      ...(PINNED ? [{ name: "one CPU per machine", rps: "2" }] : []),
    ];
    const results = [];
    for (const model of models) {
      for (const ns of others) steerReceive(ns, model.rps);
      for (const p of paths) wrk(lab.client, p.url, LOAD); // warm-up: each path once, untimed
      const runs = new Map<string, WrkRun[]>(paths.map((p) => [p.name, []]));
      for (let r = 0; r < ROUNDS; r++) {
        for (const p of r % 2 === 0 ? paths : [...paths].reverse()) {
          process.stderr.write(`${model.name}, round ${r + 1}/${ROUNDS}: ${p.name}…\n`);
          runs.get(p.name)!.push(wrk(lab.client, p.url, LOAD));
        }
      }
      const summary = paths.map((p) => {
        const m = medianRun(runs.get(p.name)!);
        return { path: p.name, connPerS: m.rate, p50Ms: m.p50Ms, p99Ms: m.p99Ms, errors: m.errors };
      });
      const base = summary[0]!.connPerS;
      console.log(`\n${model.name}: new connections/s to one whoami task from the lab's client (wrk, ${CONNECTIONS} connections, Connection: close, ${ROUNDS} × ${SECONDS} s, median)`);
      console.log(`${"path".padEnd(46)} ${"conn/s".padStart(8)} ${"× straight".padStart(10)} ${"p50 ms".padStart(7)} ${"p99 ms".padStart(7)} errors`);
      for (const s of summary) {
        console.log(`${s.path.padEnd(46)} ${s.connPerS.toFixed(0).padStart(8)} ${(s.connPerS / base).toFixed(2).padStart(10)} ${s.p50Ms.toFixed(2).padStart(7)} ${s.p99Ms.toFixed(2).padStart(7)} ${s.errors}`);
      }
      const worst = Math.min(...summary.slice(1, 3).map((s) => s.connPerS / base));
      console.log(`target (issue 5): mesh ≥ 0.9 × straight to the task — ${worst >= 0.9 ? "met" : "NOT met"} (worst ${worst.toFixed(2)})`);
      results.push({ model: model.name, summary });
    }
    mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
    writeFileSync(
      new URL("./results/mesh.json", import.meta.url),
      `${JSON.stringify({ date: new Date().toISOString(), kernel: release(), cpus: cpus().length, pinned: PINNED, rounds: ROUNDS, seconds: SECONDS, connections: CONNECTIONS, results }, null, 2)}\n`,
    );
  } finally {
    direct.kill();
    client.close();
    labDown(LAB);
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  labDown(LAB);
  process.exit(1);
});
