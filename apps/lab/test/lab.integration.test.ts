// A real 3-node lab: namespaces, a manager and agents as processes, tasks in
// sandboxes talking over VXLAN. Asserts by reading kernel state back.

import { call, type wire } from "@vipmesh/api";
import { addrOf, macForIpv4 } from "@vipmesh/core";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  agentPid,
  killAgent,
  killManager,
  listNamespaces,
  nodeStart,
  nodeStop,
  startAgent,
  startManager,
  supervisorPid,
} from "../src/lab.ts";
import { REQUEST_LOOP, waitFor as waitForBase } from "@vipmesh/testing";
import { kernelDescribe } from "@vipmesh/testing/kernel";
import { client, lab, reconnect, sharedLab } from "./shared-lab.ts";

const name = `t${randomBytes(3).toString("hex")}`;

const UDP_STREAM = fileURLToPath(new URL("./udp-stream.mjs", import.meta.url));

const sh = (netns: string, ...cmd: string[]) => execFileSync("ip", ["netns", "exec", netns, ...cmd], { timeout: 15_000 }).toString();

/** The lab's pace: things that take a process start or an agent sync, given 30 s. */
const waitFor = <T>(what: string, check: () => T | Promise<T>, timeoutMs = 30_000) => waitForBase(what, check, timeoutMs);

async function running(service: string, n: number): Promise<wire.Task[]> {
  return waitFor(`${n} running tasks of ${service}`, async () => {
    const { tasks } = await call(client, "listTasks", { service });
    const up = tasks.filter((t) => t.desiredState === "running" && t.status?.state === "running");
    const stopping = tasks.filter((t) => t.desiredState === "shutdown" && !["shutdown", "failed", "complete", "orphaned", "rejected"].includes(t.status!.state));
    return up.length === n && stopping.length === 0 ? up : undefined;
  });
}

const sandboxOf = (t: wire.Task) => listNamespaces().find((ns) => ns.startsWith(lab.prefix) && ns.endsWith(t.id))!;
const addr = (t: wire.Task) => addrOf(t.networks[0]!.addresses[0]!);
const nodeNs = (nodeId: string, nodes: wire.Node[]) =>
  lab.nodes.find((n) => n.hostname === nodes.find((x) => x.id === nodeId)!.description!.hostname)!.netns;

/** HTTP GET from inside a sandbox: the body, or undefined when it cannot connect. */
function fetchFrom(sandbox: string, ip: string): string | undefined {
  try {
    return sh(sandbox, "curl", "-s", "--max-time", "2", `http://${ip}:8080/`);
  } catch {
    return undefined;
  }
}

kernelDescribe("a 3-node lab", () => {
  // down after 3 missed heartbeats = 6 s: long enough for an agent to be restarted in place
  sharedLab({ name, nodes: 3, heartbeatMs: 2000 });

  it("keeps the join token in 0600 files only: in no agent's or supervisor's command line or environment, which /proc shows to tasks", () => {
    const token = readFileSync(lab.tokenFile!, "utf8").trim();
    expect(token).toMatch(/^VMTKN-1-/);
    for (const file of [lab.tokenFile!, join(lab.dir, "lab.json")]) expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(lab.dir, "lab.json"), "utf8")).not.toContain(token);
    // each agent and the supervisor that restarts it
    const pids = lab.nodes.flatMap((n) => [agentPid(lab, n.hostname), supervisorPid(lab, n.hostname)]);
    expect(pids.filter((p) => p !== undefined)).toHaveLength(6);
    for (const pid of pids) {
      const seen = `${readFileSync(`/proc/${pid}/cmdline`, "utf8")}\n${readFileSync(`/proc/${pid}/environ`, "utf8")}`;
      expect(seen).toContain("--token-file");
      expect(seen).not.toContain(token);
    }
  });

  it("runs tasks of one service on different nodes that reach each other over VXLAN, isolated from other networks", async () => {
    await call(client, "createNetwork", { spec: { name: "collabnet", ipam: [{ subnet: "10.0.3.0/24" }] } });
    await call(client, "createNetwork", { spec: { name: "othernet", ipam: [{ subnet: "10.0.4.0/24" }] } });
    const web = { annotations: { name: "collabweb" }, taskTemplate: { container: { command: ["vipmesh", "whoami", "--port", "8080"] } } };
    await call(client, "createService", { spec: { ...web, replicated: { replicas: 3 }, networks: [{ target: "collabnet" }] } });
    await call(client, "createService", {
      spec: { ...web, annotations: { name: "outsider" }, replicated: { replicas: 1 }, networks: [{ target: "othernet" }] },
    });
    const tasks = await running("collabweb", 3);
    const [outsider] = await running("outsider", 1);
    expect(new Set(tasks.map((t) => t.nodeId)).size).toBe(3);

    // every task answers every other by task IP, across nodes
    for (const from of tasks) {
      for (const to of tasks) {
        const body = await waitFor(`${from.slot} → ${to.slot}`, () => fetchFrom(sandboxOf(from), addr(to)));
        expect(body).toContain(`Task: ${to.id}`);
        expect(body).toContain(`Hostname: ${to.id.slice(0, 12)}`);
      }
    }
    // `vipmesh exec` runs in the task's sandbox (its hostname) and returns the command's status
    const vipmesh = fileURLToPath(new URL("../../../bin/vipmesh", import.meta.url));
    const env = { ...process.env, VIPMESH_HOST: lab.socket };
    const exec = (...args: string[]) => spawnSync(vipmesh, ["exec", ...args], { env, encoding: "utf8", timeout: 30_000 });
    expect(exec("collabweb.1", "--", "hostname").stdout.trim()).toBe(tasks.find((t) => t.slot === 1)!.id.slice(0, 12));
    expect(exec("collabweb.2", "--", "sh", "-c", "exit 7").status).toBe(7);
    // each task's output, relayed from its node's agent by the manager
    const logs = spawnSync(vipmesh, ["service", "logs", "collabweb"], { env, encoding: "utf8", timeout: 30_000 });
    for (const t of tasks) expect(logs.stdout).toContain(`whoami listening on :8080 (tcp+udp) as task ${t.id}`);
    // a task on another network reaches none of them
    for (const to of tasks) expect(fetchFrom(sandboxOf(outsider!), addr(to))).toBeUndefined();

    // kernel state read back matches the view: on each node, a VXLAN device with the VNI and
    // the node's address, and static FDB + neighbour entries for the tasks on the other nodes
    const { nodes } = await call(client, "listNodes", {});
    const net = (await call(client, "inspectNetwork", { network: "collabnet" })).network!;
    for (const t of tasks) {
      const ns = nodeNs(t.nodeId, nodes);
      const me = nodes.find((n) => n.id === t.nodeId)!;
      const links = JSON.parse(sh(ns, "ip", "-j", "-d", "link", "show", "type", "vxlan")) as {
        ifname: string;
        linkinfo: { info_data: { id: number; local: string } };
      }[];
      const vx = links.find((l) => l.linkinfo.info_data.id === net.vni)!;
      expect(vx.linkinfo.info_data.local).toBe(me.status!.addr);
      const fdb = JSON.parse(sh(ns, "bridge", "-j", "fdb", "show", "dev", vx.ifname)) as { mac: string; dst?: string }[];
      const neigh = JSON.parse(sh(ns, "ip", "-j", "neigh", "show", "dev", vx.ifname)) as { dst: string; lladdr: string }[];
      for (const other of tasks.filter((o) => o.nodeId !== t.nodeId)) {
        const otherNode = nodes.find((n) => n.id === other.nodeId)!;
        expect(fdb.some((f) => f.dst === otherNode.status!.addr)).toBe(true);
        expect(neigh.some((n) => n.dst === addr(other))).toBe(true);
      }
    }
  });

  it("scaling down removes the sandboxes and the remote FDB/neighbour entries on every node", async () => {
    const before = await running("collabweb", 3);
    const s = (await call(client, "inspectService", { service: "collabweb" })).service!;
    await call(client, "updateService", { service: "collabweb", version: s.version, spec: { ...s.spec!, replicated: { replicas: 1 } } });
    const [kept] = await running("collabweb", 1);
    const gone = before.filter((t) => t.id !== kept!.id);
    await waitFor("sandboxes removed", () => gone.every((t) => !listNamespaces().some((ns) => ns.endsWith(t.id))));
    for (const n of lab.nodes) {
      await waitFor(`${n.hostname} without the removed tasks' entries`, () => {
        const neigh = sh(n.netns, "ip", "neigh", "show", "nud", "permanent");
        const fdb = sh(n.netns, "bridge", "fdb", "show");
        const macOf = (t: wire.Task) => macForIpv4(addr(t));
        return gone.every((t) => !neigh.includes(`${addr(t)} `) && !fdb.includes(`${macOf(t)} dst`));
      });
    }
  });

  it("replaces a task whose process was killed", async () => {
    const [victim] = await running("collabweb", 1);
    for (const pid of execFileSync("ip", ["netns", "pids", sandboxOf(victim!)]).toString().split("\n").filter(Boolean)) {
      process.kill(Number(pid), "SIGKILL");
    }
    const [replacement] = await waitFor("a replacement", async () => {
      const up = await running("collabweb", 1);
      return up[0]!.id !== victim!.id ? up : undefined;
    });
    const { tasks } = await call(client, "listTasks", { service: "collabweb" });
    expect(tasks.find((t) => t.id === victim!.id)?.status?.state).toBe("failed");
    expect(replacement!.slot).toBe(victim!.slot);
  });

  it("an agent killed and restarted adopts its tasks: a TCP connection between them stays open, nothing leaks", async () => {
    const spec = { annotations: { name: "pair" }, taskTemplate: { container: { command: ["vipmesh", "whoami", "--port", "8080"] } } };
    await call(client, "createNetwork", { spec: { name: "pairnet" } });
    await call(client, "createService", { spec: { ...spec, replicated: { replicas: 2 }, networks: [{ target: "pairnet" }] } });
    const [a, b] = await running("pair", 2);
    const { nodes } = await call(client, "listNodes", {});
    const hostOf = (t: wire.Task) => nodes.find((n) => n.id === t.nodeId)!.description!.hostname;

    await waitFor("b to answer a", () => fetchFrom(sandboxOf(a!), addr(b!)));
    // one keep-alive connection from a to b, a request every 100 ms, until it breaks
    const client_ = fileURLToPath(new URL("./keepalive-client.mjs", import.meta.url));
    const conn = spawn("ip", ["netns", "exec", sandboxOf(a!), "node", client_, addr(b!), "8080"]);
    let out = "";
    conn.stdout.on("data", (d: Buffer) => (out += d.toString()));
    conn.stderr.on("data", (d: Buffer) => (out += d.toString()));
    try {
      const count = () => Number(/ok (\d+)\n$/.exec(out)?.[1] ?? 0);
      await waitFor("the connection to carry requests", () => count() >= 3).catch((err: Error) => {
        throw new Error(`${err.message}; the client said: ${out.slice(-500)}`);
      });

      const state = () => ({
        sandboxes: listNamespaces().filter((ns) => ns.startsWith(lab.prefix) && !lab.nodes.some((n) => n.netns === ns)).sort(),
        links: lab.nodes.map((n) => sh(n.netns, "ip", "-br", "link").split("\n").map((l) => l.split(/\s+/)[0]).sort().join(" ")),
        neigh: lab.nodes.map((n) => sh(n.netns, "ip", "neigh", "show", "nud", "permanent").split("\n").sort().join("|")),
      });
      const before = state();
      for (const host of [hostOf(a!), hostOf(b!)]) {
        killAgent(lab, host);
        const seen = count();
        startAgent(lab, host);
        await waitFor(`${host}'s agent back`, async () => {
          const n = (await call(client, "inspectNode", { node: host })).node!;
          return n.status?.state === "ready" && count() > seen + 10;
        });
      }
      expect(out).not.toContain("CLOSED");
      expect((await running("pair", 2)).map((t) => t.id).sort()).toEqual([a!.id, b!.id].sort());
      expect(state()).toEqual(before);
    } finally {
      conn.kill();
    }
  });

  it("a stopped node goes down and its tasks move; started again, it is ready and runs none of them", async () => {
    const { nodes } = await call(client, "listNodes", {});
    const [first] = await running("pair", 2);
    const host = nodes.find((n) => n.id === first!.nodeId)!.description!.hostname;
    nodeStop(lab, host);
    await waitFor(`${host} down`, async () => (await call(client, "inspectNode", { node: host })).node?.status?.state === "down");
    const moved = await running("pair", 2);
    expect(moved.some((t) => t.id === first!.id)).toBe(false);
    nodeStart(lab, host);
    await waitFor(`${host} ready`, async () => (await call(client, "inspectNode", { node: host })).node?.status?.state === "ready");
    // the orphaned task's sandbox is gone once the node's agent converged
    await waitFor("the orphaned sandbox removed", () => !listNamespaces().some((ns) => ns.endsWith(first!.id)));
  });

  it("agents come back to a restarted manager on their own, and their tasks keep running", async () => {
    const before = await running("pair", 2);
    killManager(lab);
    await new Promise((r) => setTimeout(r, 1000)); // agents notice and start backing off
    await startManager(lab);
    reconnect();
    await waitFor("every node ready again", async () => {
      const { nodes } = await call(client, "listNodes", {});
      return nodes.length === 3 && nodes.every((n) => n.status?.state === "ready");
    });
    expect((await running("pair", 2)).map((t) => t.id).sort()).toEqual(before.map((t) => t.id).sort());
    await waitFor("tasks still answer", () => fetchFrom(sandboxOf(before[0]!), addr(before[1]!)));
  });

  it("balances a service's VIP over its tasks inside every sandbox, and refuses a VIP with no task at once", async () => {
    await call(client, "createNetwork", { spec: { name: "vipnet" } });
    const whoami = (name: string, replicas: number) => ({
      annotations: { name },
      taskTemplate: { container: { command: ["vipmesh", "whoami", "--port", "8080"] } },
      replicated: { replicas },
      networks: [{ target: "vipnet" }],
    });
    const web = (await call(client, "createService", { spec: whoami("vipweb", 3) })).service!;
    const empty = (await call(client, "createService", { spec: whoami("nobody", 0) })).service!;
    await call(client, "createService", { spec: whoami("box", 1) });
    const backends = await running("vipweb", 3);
    const [box] = await running("box", 1);
    const vip = addrOf(web.endpoint!.virtualIps[0]!.addr);
    for (const b of backends) await waitFor(`${b.id} listening`, () => fetchFrom(sandboxOf(box!), addr(b)));

    // 300 requests, each on a new connection, reach each of the three tasks about evenly
    // (random slices: expected 100 each, sd 8; below 50 is 6 sd out)
    const spread = JSON.parse(sh(sandboxOf(box!), "node", REQUEST_LOOP, vip, "8080", "2000", "300").trim().split("\n").pop()!) as {
      ok: number;
      tasks: Record<string, number>;
    };
    expect(spread.ok).toBe(300);
    expect(Object.keys(spread.tasks).sort()).toEqual(backends.map((b) => b.id).sort());
    for (const n of Object.values(spread.tasks)) expect(n).toBeGreaterThan(50);

    // the rule set read back from the kernel: the VIP's slices point at the three task addresses
    const table = sh(sandboxOf(box!), "nft", "-j", "list", "map", "ip", "vipmesh", "be");
    for (const b of backends) expect(table).toContain(`"${addr(b)}"`);

    // the embedded DNS: the service name → its VIP, tasks.<name> → the task IPs, by name over the VIP;
    // a service on another network does not resolve
    // dig in the sandbox asks the server of its resolv.conf (127.0.0.11); +tcp asks over TCP
    const dig = (...args: string[]) => sh(sandboxOf(box!), "dig", "+tries=1", "+time=2", ...args);
    const resolve = (name: string) => dig("+short", name).split("\n").filter(Boolean).sort();
    await waitFor("vipweb to resolve to its VIP", () => resolve("vipweb").join() === vip);
    expect(resolve("tasks.vipweb")).toEqual(backends.map(addr).sort());
    expect(dig("+short", "+tcp", "tasks.vipweb").split("\n").filter(Boolean).sort()).toEqual(backends.map(addr).sort());
    expect(dig("collabweb")).toContain("status: NXDOMAIN"); // on another network
    expect(dig("+short", "-x", vip).trim()).toBe("vipweb.");
    expect(sh(sandboxOf(box!), "curl", "-s", "--max-time", "2", "http://vipweb:8080/")).toContain("Task: ");

    // UDP through the VIP: whoami echoes its task ID
    const udp = sh(sandboxOf(box!), "node", "-e", `
      const s = require("dgram").createSocket("udp4");
      s.on("message", (m) => { process.stdout.write(String(m)); process.exit(0); });
      s.send("who", 8080, "${vip}");
      setTimeout(() => process.exit(1), 2000);`);
    expect(backends.map((b) => b.id).some((id) => udp.includes(id))).toBe(true);

    // a dnsrr service has no VIP, and its name resolves to its task IPs
    const rr = (await call(client, "createService", { spec: { ...whoami("rrdns", 2), endpointSpec: { mode: "dnsrr" } } })).service!;
    expect(rr.endpoint!.virtualIps).toEqual([]);
    const rrTasks = await running("rrdns", 2);
    await waitFor("rrdns to resolve to its task IPs", () => resolve("rrdns").join() === rrTasks.map(addr).sort().join());

    // a service without tasks: connection refused at once (curl exit 7), not a timeout (28)
    const refused = spawnSync("ip", ["netns", "exec", sandboxOf(box!), "curl", "-s", "--max-time", "3", `http://${addrOf(empty.endpoint!.virtualIps[0]!.addr)}:8080/`]);
    expect(refused.status).toBe(7);
  });

  it("a task that turns unhealthy leaves load balancing on every node, and comes back when healthy", async () => {
    await call(client, "createNetwork", { spec: { name: "hnet" } });
    const whoami = (name: string, replicas: number, healthcheck?: object) => ({
      annotations: { name },
      taskTemplate: { container: { command: ["vipmesh", "whoami", "--port", "8080"], ...(healthcheck ? { healthcheck } : {}) } },
      replicated: { replicas },
      networks: [{ target: "hnet" }],
    });
    const check = { test: ["curl -sf --max-time 1 http://127.0.0.1:8080/health"], intervalMs: 200, timeoutMs: 1000, retries: 1 };
    const web = (await call(client, "createService", { spec: whoami("hweb", 3, check) })).service!;
    await call(client, "createService", { spec: whoami("hbox", 1) });
    const [box] = await running("hbox", 1);
    const backends = await waitFor("three healthy tasks", async () => {
      const t = await running("hweb", 3);
      return t.every((x) => x.status?.health === "healthy") ? t : undefined;
    });
    const vip = addrOf(web.endpoint!.virtualIps[0]!.addr);
    const map = () => sh(sandboxOf(box!), "nft", "-j", "list", "map", "ip", "vipmesh", "be");

    // a steady UDP client on one socket: one conntrack flow, NAT-ed to one task — the one made sick
    const stream = spawn("ip", ["netns", "exec", sandboxOf(box!), "node", UDP_STREAM, vip, "8080"], { stdio: ["ignore", "pipe", "inherit"] });
    const answers: string[] = [];
    stream.stdout.on("data", (d: Buffer) => answers.push(...String(d).split("\n").filter(Boolean)));
    try {
      const flowTask = await waitFor("the UDP stream answered", () => answers[0]);
      const sick = backends.find((b) => b.id === flowTask)!;
      expect(sick).toBeDefined();
      const flip = (to: "ok" | "fail") =>
        sh(sandboxOf(box!), "curl", "-s", "--max-time", "2", "-X", "POST", "-d", to, `http://${addr(sick)}:8080/health`);

      flip("fail");
      await waitFor("the sick task unhealthy and out of the map", async () => {
        const { tasks } = await call(client, "listTasks", { service: "hweb" });
        return tasks.find((t) => t.id === sick.id)?.status?.health === "unhealthy" && !map().includes(`"${addr(sick)}"`);
      });
      for (let i = 0; i < 20; i++) expect(fetchFrom(sandboxOf(box!), vip) ?? "").not.toContain(sick.id);
      // its UDP flow was flushed with it: the same socket's datagrams now reach a healthy task
      // (the sick one still runs and answers, so without the flush they would keep going to it)
      const seen = answers.length;
      await waitFor("the UDP stream moved to a healthy task", () => answers.length > seen + 5 && answers.slice(-5).every((t) => t !== sick.id));
      expect(answers.slice(-5).every((t) => backends.some((b) => b.id === t))).toBe(true);

      flip("ok");
      await waitFor("the task healthy and back in the map", async () => {
        const { tasks } = await call(client, "listTasks", { service: "hweb" });
        return tasks.find((t) => t.id === sick.id)?.status?.health === "healthy" && map().includes(`"${addr(sick)}"`);
      });
    } finally {
      stream.kill("SIGTERM");
    }
  });

  it("drains: under a steady request loop through the VIP, no request fails during a scale-down 3 → 1 or a rolling update", async () => {
    await call(client, "createNetwork", { spec: { name: "drainnet" } });
    // a health check, as a real service has: a new task gets traffic once it answers, not once its process exists
    const healthcheck = { test: ["curl -sf --max-time 1 http://127.0.0.1:8080/health"], intervalMs: 200, timeoutMs: 1000, retries: 1 };
    const spec = (name: string, replicas: number) => ({
      annotations: { name },
      taskTemplate: { container: { command: ["vipmesh", "whoami", "--port", "8080"], healthcheck } },
      replicated: { replicas },
      networks: [{ target: "drainnet" }],
      updateConfig: { parallelism: 1, order: "stop-first" },
    });
    const web = (await call(client, "createService", { spec: spec("dweb", 3) })).service!;
    await call(client, "createService", { spec: spec("dbox", 1) });
    const healthy = (service: string, n: number) =>
      waitFor(`${n} healthy tasks of ${service}`, async () => {
        const t = await running(service, n);
        return t.every((x) => x.status?.health === "healthy") ? t : undefined;
      });
    const [box] = await healthy("dbox", 1);
    const first = await healthy("dweb", 3);
    for (const t of first) await waitFor(`${t.id} reached`, () => fetchFrom(sandboxOf(box!), addr(t)));
    const update = async (change: (s: wire.ServiceSpec) => wire.ServiceSpec) => {
      const s = (await call(client, "inspectService", { service: "dweb" })).service!;
      await call(client, "updateService", { service: "dweb", version: s.version, spec: change(s.spec!) });
    };

    const loop = spawn("ip", ["netns", "exec", sandboxOf(box!), "node", REQUEST_LOOP, addrOf(web.endpoint!.virtualIps[0]!.addr), "8080"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    loop.stdout.on("data", (d: Buffer) => (out += d));
    const ended = new Promise<void>((resolve) => loop.on("close", () => resolve()));
    try {
      await waitFor("the loop to start", () => out.includes("started"));
      await new Promise((r) => setTimeout(r, 1000));
      await update((s) => ({ ...s, replicated: { replicas: 1 } }));
      const [kept] = await running("dweb", 1);
      await update((s) => ({ ...s, replicated: { replicas: 3 } }));
      await healthy("dweb", 3);
      // a forced rolling update replaces every task, one at a time
      await update((s) => ({ ...s, taskTemplate: { ...s.taskTemplate!, forceUpdate: (s.taskTemplate!.forceUpdate ?? 0) + 1 } }));
      const replaced = await waitFor("every task replaced", async () => {
        const svc = (await call(client, "inspectService", { service: "dweb" })).service!;
        const t = await healthy("dweb", 3);
        return svc.updateStatus?.state === "completed" && !t.some((x) => x.id === kept!.id) ? t : undefined;
      }, 60_000);
      expect(replaced).toHaveLength(3);
    } finally {
      loop.kill("SIGTERM");
      await ended;
    }
    const result = JSON.parse(out.trim().split("\n").pop()!) as { ok: number; failed: number; errors: string[]; tasks: Record<string, number> };
    expect(result.errors).toEqual([]);
    expect(result.ok).toBeGreaterThan(100);
    // the loop was balanced over the old tasks and the new ones
    expect(Object.keys(result.tasks).length).toBeGreaterThanOrEqual(6);
  });

  it("schedules rr exactly in turn, keeps a client on one task with affinity, and weights 1:3 give the heavier task most new connections", async () => {
    await call(client, "createNetwork", { spec: { name: "rrnet" } });
    const whoami = (name: string, replicas: number, endpointSpec?: object) => ({
      annotations: { name },
      taskTemplate: { container: { command: ["vipmesh", "whoami", "--port", "8080"] } },
      replicated: { replicas },
      networks: [{ target: "rrnet" }],
      ...(endpointSpec ? { endpointSpec } : {}),
    });
    const rr = (await call(client, "createService", { spec: whoami("rrweb", 3, { lbScheduler: "rr" }) })).service!;
    const weighted = (await call(client, "createService", { spec: whoami("wweb", 2, { lbWeights: { "1": 1, "2": 3 } }) })).service!;
    const sticky = (await call(client, "createService", { spec: whoami("aweb", 3, { lbAffinity: "client-ip", lbAffinityTimeoutS: 60 }) })).service!;
    await call(client, "createService", { spec: whoami("rrbox", 1) });
    const [box] = await running("rrbox", 1);
    const rrTasks = await running("rrweb", 3);
    const wTasks = await running("wweb", 2);
    const aTasks = await running("aweb", 3);
    for (const t of [...rrTasks, ...wTasks, ...aTasks]) await waitFor(`${t.id} listening`, () => fetchFrom(sandboxOf(box!), addr(t)));
    const vipOf = (s: wire.Service) => addrOf(s.endpoint!.virtualIps[0]!.addr);
    const taskOf = (body: string | undefined) => (body && /Task: (\S+)/.exec(body)?.[1]) || "none";
    await waitFor("rrbox's rules hold every backend", () => {
      const map = sh(sandboxOf(box!), "nft", "list", "ruleset");
      return [...rrTasks, ...wTasks, ...aTasks].every((t) => map.includes(addr(t)));
    });

    const counts = (vip: string, n: number) => {
      const c = new Map<string, number>();
      for (let i = 0; i < n; i++) {
        const t = taskOf(fetchFrom(sandboxOf(box!), vip));
        c.set(t, (c.get(t) ?? 0) + 1);
      }
      return c;
    };
    const six = counts(vipOf(rr), 6);
    expect([...six.keys()].sort()).toEqual(rrTasks.map((t) => t.id).sort());
    expect([...six.values()]).toEqual([2, 2, 2]);

    // client-IP affinity: one client, one task, for every new connection
    const stuck = counts(vipOf(sticky), 20);
    expect([...stuck.values()]).toEqual([20]);
    expect(aTasks.map((t) => t.id)).toContain([...stuck.keys()][0]);

    const heavy = wTasks.find((t) => t.slot === 2)!;
    const share = (counts(vipOf(weighted), 400).get(heavy.id) ?? 0) / 400;
    expect(share).toBeGreaterThan(0.6);
    expect(share).toBeLessThan(0.9);
  });
});
