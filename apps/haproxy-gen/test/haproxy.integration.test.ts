// haproxy-gen with a real HAProxy (master-worker, in the lab's client
// namespace) in front of a real 3-node lab: the rendered config passes
// `haproxy -c`, requests reach every task, and under a steady request loop the
// runtime updates and reloads that follow the cluster lose no request.

import { call, type ClusterServiceClient, credentialsFromDir, type wire } from "@vipmesh/api";
import { type LabLayout, labClient, labDown, labUp, listNamespaces, nodeStart, nodeStop } from "@vipmesh/lab";
import { REQUEST_LOOP, tempDir, waitFor as waitForBase } from "@vipmesh/testing";
import { kernelDescribe } from "@vipmesh/testing/kernel";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ConfigError, Generator, type GeneratorOptions, TemplateError } from "../src/index.ts";

const name = `h${randomBytes(3).toString("hex")}`;
let lab: LabLayout;
let client: ClusterServiceClient;
let tmp: { path: string; remove: () => void } | undefined;
let dir: string;
let watcher: Generator | undefined;
const logs: string[] = [];

const waitFor = <T>(what: string, check: () => T | Promise<T>, timeoutMs = 30_000) => waitForBase(what, check, timeoutMs);
const curl = (url: string) => spawnSync("ip", ["netns", "exec", lab.client, "curl", "-s", "--max-time", "3", url], { encoding: "utf8" });
const HEALTHY = { test: ["curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:8080/"], intervalMs: 300, timeoutMs: 2000, retries: 3, startPeriodMs: 0 };

const options = (o: Partial<GeneratorOptions> = {}): GeneratorOptions => ({
  managers: [lab.socket],
  credentials: credentialsFromDir(lab.readonlyTlsDir), // a watcher needs no more than read-only
  output: join(dir, "haproxy.cfg"),
  runtime: { statsSocket: join(dir, "admin.sock"), statsPort: 8404, tlsCert: "" },
  log: (line) => logs.push(line),
  ...o,
});

async function runningTasks(service: string, n: number): Promise<wire.Task[]> {
  return waitFor(`${n} healthy tasks of ${service}`, async () => {
    const { tasks } = await call(client, "listTasks", { service });
    const up = tasks.filter((t) => t.desiredState === "running" && t.status?.state === "running" && t.status.health === "healthy");
    return up.length === n ? up : undefined;
  });
}

async function scale(service: string, replicas: number): Promise<void> {
  const s = (await call(client, "inspectService", { service })).service!;
  await call(client, "updateService", { service, version: s.version, spec: { ...s.spec!, replicated: { replicas } } });
}

/** The enabled servers of a backend in the live config, as addr:port. */
function servers(backend: string): string[] {
  const lines = readFileSync(join(dir, "haproxy.cfg"), "utf8").split("\n");
  const start = lines.indexOf(`backend ${backend}`);
  if (start < 0) return [];
  const out: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === "") break;
    const m = /^\s+server \S+ (\S+)(.*)$/.exec(line);
    if (m && !/\bdisabled\b/.test(m[2]!)) out.push(m[1]!);
  }
  return out;
}

kernelDescribe("haproxy-gen in front of a 3-node lab", () => {
  beforeAll(async () => {
    if (spawnSync("haproxy", ["-v"]).error) throw new Error("haproxy is not installed (scripts/bootstrap.sh installs it)");
    tmp = tempDir("vipmesh-haproxy-");
    dir = tmp.path;
    // heartbeats every second: a stopped node is down after 3 s
    lab = await labUp({ name, nodes: 3, heartbeatMs: 1000 });
    client = labClient(lab);
  });
  afterAll(async () => {
    await watcher?.stop();
    const pidFile = join(dir ?? "/nonexistent", "haproxy.pid");
    if (existsSync(pidFile)) spawnSync("kill", [readFileSync(pidFile, "utf8").trim()]);
    client?.close();
    labDown(name);
    tmp?.remove();
    expect(listNamespaces().filter((n) => n.startsWith(`vm-${name}-`))).toEqual([]);
  });

  it("renders a config that haproxy -c accepts, and requests through HAProxy reach every task", async () => {
    const command = ["vipmesh", "whoami", "--port", "8080"];
    await call(client, "createService", {
      spec: {
        annotations: { name: "web" },
        taskTemplate: { container: { command, healthcheck: HEALTHY } },
        replicated: { replicas: 3 },
        endpointSpec: { ports: [{ targetPort: 8080, publishedPort: 8080 }] },
      },
    });
    await call(client, "createService", {
      spec: {
        annotations: { name: "edge" },
        taskTemplate: { container: { command, healthcheck: HEALTHY }, placement: { constraints: ["node.hostname!=node3"] } },
        replicated: { replicas: 1 },
        endpointSpec: { ports: [{ targetPort: 8080, publishedPort: 9090, publishMode: "host" }] },
      },
    });
    const web = await runningTasks("web", 3);
    await runningTasks("edge", 1);

    // one-shot: nothing to reload yet; the config is written once it passed haproxy -c
    expect(await new Generator(options()).once()).toBe("written");
    expect(servers("be_web_8080")).toEqual(expect.arrayContaining(lab.nodes.map((n) => `${n.addr}:8080`)));
    execFileSync("ip", ["netns", "exec", lab.client, "haproxy", "-W", "-S", join(dir, "master.sock"), "-f", join(dir, "haproxy.cfg"), "-p", join(dir, "haproxy.pid"), "-D"]);

    await waitFor("HAProxy answers", () => curl("http://127.0.0.1:8080/").status === 0);
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) seen.add(/Task: (\S+)/.exec(curl("http://127.0.0.1:8080/").stdout)![1]!);
    expect([...seen].sort()).toEqual(web.map((t) => t.id).sort());
    expect(curl("http://127.0.0.1:8404/stats").stdout).toContain("be_web_8080");
  });

  it("follows the cluster under a steady request loop: scaling a host-mode service, a node going down and back, a new service — no request lost", async () => {
    watcher = new Generator(options({ masterSocket: join(dir, "master.sock") }));
    watcher.watch();
    const loop = spawn("ip", ["netns", "exec", lab.client, process.execPath, REQUEST_LOOP, "127.0.0.1", "9090"], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    loop.stdout.on("data", (d: Buffer) => (out += d));
    const ended = new Promise<void>((resolve) => loop.on("close", () => resolve()));
    const started = Date.now();
    const node3 = lab.nodes[2]!;
    try {
      await waitFor("the loop to start", () => out.includes("started"));
      await new Promise((r) => setTimeout(r, 500));

      await scale("edge", 2); // a second node joins the host-mode backend: a runtime change
      await runningTasks("edge", 2);
      await waitFor("edge on two nodes in the config", () => servers("be_edge_9090").length === 2);
      await new Promise((r) => setTimeout(r, 3000)); // its health check passes twice, a second apart: then it takes requests
      await scale("edge", 1); // and leaves it
      await waitFor("edge on one node in the config", () => servers("be_edge_9090").length === 1);

      nodeStop(lab, "node3"); // down: its servers leave every mesh backend, traffic keeps flowing
      await waitFor("node3 out of the config", () => !servers("be_web_8080").includes(`${node3.addr}:8080`), 30_000);
      for (let i = 0; i < 10; i++) expect(curl("http://127.0.0.1:8080/").status, "a request through the mesh backend").toBe(0);
      nodeStart(lab, "node3");
      await waitFor("node3 back in the config", () => servers("be_web_8080").includes(`${node3.addr}:8080`), 30_000);

      // a new published port is a new frontend: a reload, with the listeners handed over
      await call(client, "createService", {
        spec: { annotations: { name: "extra" }, taskTemplate: { container: { command: ["vipmesh", "whoami", "--port", "8080"] } }, replicated: { replicas: 1 }, endpointSpec: { ports: [{ targetPort: 8080, publishedPort: 8081 }] } },
      });
      await waitFor("the new frontend answers", () => curl("http://127.0.0.1:8081/").status === 0);
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      loop.kill("SIGTERM");
      await ended;
    }
    const seconds = (Date.now() - started) / 1000;
    const result = JSON.parse(out.trim().split("\n").pop()!) as { ok: number; failed: number; errors: string[]; tasks: Record<string, number> };
    expect(result.errors).toEqual([]);
    expect(result.ok / seconds, "requests per second").toBeGreaterThanOrEqual(200);
    expect(Object.keys(result.tasks).length, "both edge tasks answered").toBe(2);
    expect(logs.some((l) => l.endsWith(": runtime")), "some changes went over the runtime API").toBe(true);
    expect(logs.some((l) => l.endsWith(": reload")), "and a reload").toBe(true);
  });

  it("a broken custom template, or a config HAProxy refuses, leaves the last good config live and reports the error until a good render", async () => {
    const output = join(dir, "other.cfg");
    const template = join(dir, "custom.hbs");
    writeFileSync(template, readFileSync(new URL("../src/templates/haproxy.cfg.hbs", import.meta.url), "utf8"));
    await new Generator(options({ output, template })).once();
    const good = readFileSync(output, "utf8");

    writeFileSync(template, "global\n{{#each tcp}}\n");
    await expect(new Generator(options({ output, template })).once()).rejects.toThrow(TemplateError);
    writeFileSync(template, "global\n  no-such-directive {{version}}\n");
    await expect(new Generator(options({ output, template })).once()).rejects.toThrow(ConfigError);
    expect(readFileSync(output, "utf8")).toBe(good);
    expect(JSON.parse(readFileSync(`${output}.status`, "utf8"))).toMatchObject({ ok: false, error: expect.stringContaining("no-such-directive") });

    // watch mode: the error stays until the template is fixed and the next change renders
    const w = new Generator(options({ output, template }));
    w.watch();
    try {
      await waitFor("the error reported", () => w.status.ok === false);
      expect(readFileSync(output, "utf8")).toBe(good);
      writeFileSync(template, readFileSync(new URL("../src/templates/haproxy.cfg.hbs", import.meta.url), "utf8"));
      await scale("extra", 2);
      await waitFor("the error cleared", () => w.status.ok);
      expect(readFileSync(output, "utf8")).not.toBe(good);
    } finally {
      await w.stop();
    }
  });
});
