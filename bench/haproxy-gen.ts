// Benchmark (not a test): haproxy-gen's render (template data + Handlebars,
// the default template) at cluster sizes, beside `haproxy -c` validating the
// same file, in the same run.
//
//   npm run bench:haproxy -- [--quick]      (haproxy is installed by scripts/bootstrap.sh)
//
// Sizes (issue 6): 1,000 services × 100 nodes (one mesh port each: 1,000
// backends of 100 servers, 128 slots each) and 10,000 services × 3 nodes
// (10,000 backends of 3 servers). Render: median and max over 7 runs (--quick 3),
// after one warm-up. Target: render ≤ 1 s. The numbers also go to
// bench/results/haproxy-gen.json.

import type { wire } from "@vipmesh/api";
import { loadTemplate, templateData, validateConfig, type ClusterSnapshot } from "@vipmesh/haproxy-gen";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";

const RUNS = process.argv.includes("--quick") ? 3 : 7;
const runtime = { statsSocket: "/run/vipmesh-bench/admin.sock", statsPort: 8404, tlsCert: "" };

function cluster(services: number, nodes: number): ClusterSnapshot {
  const nodeList = Array.from({ length: nodes }, (_, i) => ({
    id: `node${String(i).padStart(4, "0")}`,
    description: { hostname: `node${i}` },
    spec: { availability: "active", labels: {} },
    // a mesh port is served by ready nodes with an ingress sandbox (an ingress address)
    status: { state: "ready", addr: `10.${(i >> 8) & 255}.${i & 255}.1`, ingressAddr: `10.255.${(i >> 8) & 255}.${(i & 255) + 1}`, message: "" },
  })) as unknown as wire.Node[];
  const serviceList = Array.from({ length: services }, (_, i) => ({
    id: `svc${i}`,
    spec: { annotations: { name: `svc${i}`, labels: {} }, endpointSpec: { lbScheduler: "", lbAffinity: "none" } },
    endpoint: { ports: [{ protocol: "tcp", targetPort: 80, publishedPort: 10000 + i, publishMode: "ingress" }], virtualIps: [] },
  })) as unknown as wire.Service[];
  return { version: 1, nodes: nodeList, services: serviceList, tasks: [] };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;

async function main(): Promise<void> {
  const render = loadTemplate();
  const dir = mkdtempSync(join(tmpdir(), "vipmesh-bench-haproxy-"));
  const results = [];
  try {
    for (const [services, nodes] of [
      [1000, 100],
      [10000, 3],
    ] as const) {
      const snapshot = cluster(services, nodes);
      render(templateData(snapshot, runtime)); // warm-up
      const times: number[] = [];
      let text = "";
      for (let i = 0; i < RUNS; i++) {
        const t0 = performance.now();
        text = render(templateData(snapshot, runtime));
        times.push(performance.now() - t0);
      }
      // a render that serves from no node would be fast and worthless: every node must be an enabled server
      const enabled = text.split("\n").filter((l) => /^\s+server /.test(l) && !/ disabled\b/.test(l)).length;
      if (enabled !== services * nodes) throw new Error(`the render has ${enabled} enabled servers, not ${services * nodes}`);
      const file = join(dir, `haproxy-${services}x${nodes}.cfg`);
      writeFileSync(file, text);
      const v0 = performance.now();
      await validateConfig(file);
      const validateMs = performance.now() - v0;
      const r = { services, nodes, servers: services * nodes, renderMedianMs: median(times), renderMaxMs: Math.max(...times), validateMs, bytes: text.length };
      results.push(r);
      process.stderr.write(`${services} services × ${nodes} nodes done\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\nhaproxy-gen: render (template data + default template) and haproxy -c of the same file (${RUNS} renders, ${cpus()[0]?.model ?? "?"})`);
  console.log(`${"size".padEnd(28)} ${"render p50".padStart(11)} ${"max".padStart(8)} ${"haproxy -c".padStart(11)} ${"config".padStart(9)}  target render ≤ 1 s`);
  for (const r of results) {
    const size = `${r.services} svc × ${r.nodes} nodes`;
    console.log(
      `${size.padEnd(28)} ${`${r.renderMedianMs.toFixed(0)} ms`.padStart(11)} ${`${r.renderMaxMs.toFixed(0)} ms`.padStart(8)} ${`${r.validateMs.toFixed(0)} ms`.padStart(11)} ${`${(r.bytes / 1e6).toFixed(1)} MB`.padStart(9)}  ${r.renderMaxMs <= 1000 ? "met" : "NOT met"}`,
    );
  }
  mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
  writeFileSync(new URL("./results/haproxy-gen.json", import.meta.url), `${JSON.stringify({ date: new Date().toISOString(), runs: RUNS, results }, null, 2)}\n`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
