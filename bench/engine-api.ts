// The Docker Engine API beside gRPC (issue 21), against a real manager
// (`vipmesh manager`, its own process, SQLite) serving both on unix sockets,
// with 3 simulated agents and N services running (1k by default):
//
//   npx tsx bench/engine-api.ts [--services N] [--runs N] [--quick]
//
//   1. the calls alone, one at a time from this process: GET /services?status=true
//      (what `docker service ls` asks) beside gRPC ListServices, and GET /services/{id}
//      beside InspectService;
//   2. the commands a user types, each a process of its own, end to end:
//      `docker service ls` beside `vipmesh service ls`, and `docker service inspect X`
//      beside `vipmesh service inspect X`.
//
// Percentiles are nearest-rank. Results: stdout, and bench/results/engine-api.json.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { call, clusterClient, credentialsFromDir } from "@vipmesh/api";
import { docker, SimAgent, tempDir, waitFor } from "@vipmesh/testing";
import { ms, numberFlag, summarize } from "./lib/samples.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const VIPMESH = join(ROOT, "bin/vipmesh");

const quick = process.argv.includes("--quick");
const opts = {
  services: numberFlag("--services", quick ? 200 : 1000),
  runs: numberFlag("--runs", quick ? 10 : 30),
  out: join(ROOT, "bench/results/engine-api.json"),
};


/** `runs` timings of `fn`, one at a time, after one untimed warm-up. */
async function time(fn: () => Promise<unknown>): Promise<ReturnType<typeof summarize>> {
  await fn();
  const samples: number[] = [];
  for (let i = 0; i < opts.runs; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  return summarize(samples);
}

/** `vipmesh manager` with gRPC and the Engine API on unix sockets in `dir`; resolves once both listen. */
async function startManagerProcess(dir: string) {
  const socket = join(dir, "api.sock");
  const dockerSocket = join(dir, "docker.sock");
  const child = spawn(VIPMESH, ["manager", "--data-dir", join(dir, "data"), "--listen", socket, "--docker-api", `unix:${dockerSocket}`], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  await waitFor("the manager's sockets", () => existsSync(socket) && existsSync(dockerSocket), 60_000);
  return { socket, dockerSocket, tlsDir: join(dir, "data/admin"), stop: () => (child.kill("SIGTERM"), exited) };
}

/** GET `path` from the Engine API on `socketPath`; rejects unless 200. */
function httpGet(socketPath: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: "GET" }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET ${path}: ${res.statusCode} ${body}`))));
    });
    req.on("error", reject);
    req.end();
  });
}

/** A command as its own process; rejects unless it exits 0. */
function run(argv: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => void (stderr += d.toString()));
    child.once("exit", (code) => (code === 0 ? resolve() : reject(new Error(`${argv.join(" ")}: exit ${code}: ${stderr}`))));
  });
}

async function main(): Promise<void> {
  const dir = tempDir();
  const m = await startManagerProcess(dir.path);
  const client = clusterClient(m.socket, credentialsFromDir(m.tlsDir));
  const target = { host: `unix://${m.dockerSocket}` };
  const agents: SimAgent[] = [];
  try {
    const { token } = await call(client, "getJoinToken", { role: "worker" });
    for (let i = 1; i <= 3; i++) {
      const agent = new SimAgent(m.socket, { hostname: `node${i}`, addr: `198.18.0.${i}`, token, ownConnection: true });
      await agent.start();
      agents.push(agent);
    }
    const spec = (name: string) => ({ annotations: { name }, taskTemplate: { container: { image: "vipmesh/whoami" } }, replicated: { replicas: 1 } });
    for (let i = 0; i < opts.services; i += 16) {
      await Promise.all(Array.from({ length: Math.min(16, opts.services - i) }, (_, j) => call(client, "createService", { spec: spec(`svc${i + j}`) })));
    }
    await waitFor("every task running", async () => {
      const { tasks } = await call(client, "listTasks", {});
      return tasks.length === opts.services && tasks.every((t) => t.status?.state === "running");
    }, 180_000);
    const name = `svc${Math.floor(opts.services / 2)}`;
    const { service } = await call(client, "inspectService", { service: name });
    // the API answers what the gRPC call answers: every service, each with its running tasks counted
    const listed = JSON.parse(await httpGet(m.dockerSocket, "/v1.47/services?status=true")) as { ServiceStatus?: { RunningTasks: number } }[];
    if (listed.length !== opts.services || !listed.every((s) => s.ServiceStatus?.RunningTasks === 1)) {
      throw new Error(`GET /services?status=true gave ${listed.length} services, not ${opts.services} each with 1 running task`);
    }
    process.stderr.write(`${opts.services} services running; timing ${opts.runs} of each…\n`);

    const calls = {
      list: await time(() => httpGet(m.dockerSocket, "/v1.47/services?status=true")),
      listGrpc: await time(() => call(client, "listServices", {})),
      inspect: await time(() => httpGet(m.dockerSocket, `/v1.47/services/${service!.id}`)),
      inspectGrpc: await time(() => call(client, "inspectService", { service: service!.id })),
    };
    const grpcCli = (...verb: string[]) => run([VIPMESH, "--host", m.socket, "--tls-dir", m.tlsDir, ...verb]);
    const dockerCli = async (...verb: string[]) => {
      const r = await docker(target, verb, { timeoutMs: 60_000 });
      if (r.code !== 0) throw new Error(`docker ${verb.join(" ")}: exit ${r.code}: ${r.stderr}`);
    };
    const commands = {
      list: await time(() => dockerCli("service", "ls")),
      listGrpc: await time(() => grpcCli("service", "ls")),
      inspect: await time(() => dockerCli("service", "inspect", name)),
      inspectGrpc: await time(() => grpcCli("service", "inspect", name)),
    };

    const result = { services: opts.services, runs: opts.runs, calls, commands };
    const line = (what: string, a: ReturnType<typeof summarize>, b: ReturnType<typeof summarize>, baseline: string) =>
      console.log(`${what}: p50 ${ms(a.p50Ms)}, p99 ${ms(a.p99Ms)}; ${baseline}: p50 ${ms(b.p50Ms)}, p99 ${ms(b.p99Ms)}`);
    console.log(`at ${opts.services} services, ${opts.runs} runs each, one at a time:`);
    line("  GET /services?status=true", calls.list, calls.listGrpc, "gRPC ListServices");
    line("  GET /services/{id}       ", calls.inspect, calls.inspectGrpc, "gRPC InspectService");
    line("  docker service ls        ", commands.list, commands.listGrpc, "vipmesh service ls");
    line("  docker service inspect   ", commands.inspect, commands.inspectGrpc, "vipmesh service inspect");
    mkdirSync(dirname(opts.out), { recursive: true });
    writeFileSync(opts.out, `${JSON.stringify(result, null, 2)}\n`);
  } finally {
    for (const a of agents) a.stop();
    client.close();
    await m.stop();
    dir.remove();
  }
}

await main();
