// Faults on a real 3-node lab, each with a request loop through a VIP and one
// through the routing mesh running across it: an agent paused (default 5 s
// heartbeat), the manager killed and restarted after 2, 10 and 30 s (1 s
// heartbeat), a node silent for 30 s, that node removed. Nothing acknowledged is
// lost, and nothing is left behind. docs/RELIABILITY.md says what each shows.

import { call, type wire } from "@vipmesh/api";
import { addrOf } from "@vipmesh/core";
import { requestLoop, waitFor as waitForBase } from "@vipmesh/testing";
import { kernelDescribe } from "@vipmesh/testing/kernel";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, expect, it } from "vitest";
import { agentPid, killManager, listNamespaces, nodePause, nodeResume, startManager } from "../src/lab.ts";
import { client, lab, reconnect, sharedLab } from "./shared-lab.ts";

const name = `f${randomBytes(3).toString("hex")}`;
const KEEPALIVE = fileURLToPath(new URL("./keepalive-client.mjs", import.meta.url));
const waitFor = <T>(what: string, check: () => T | Promise<T>, timeoutMs = 30_000) => waitForBase(what, check, timeoutMs);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sh = (netns: string, ...cmd: string[]) => execFileSync("ip", ["netns", "exec", netns, ...cmd], { timeout: 15_000 }).toString();

/** The manager's restart grace at a 1 s heartbeat (apps/manager/src/node-health.ts: 3 heartbeats + 2 s + 5 s). */
const RESTART_GRACE_MS = 10_000;
const WHOAMI = ["vipmesh", "whoami", "--port", "8080"];
const HEALTHY = { test: ["curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:8080/"], intervalMs: 300, timeoutMs: 2000, retries: 3, startPeriodMs: 0 };
const TERMINAL = ["shutdown", "failed", "complete", "orphaned", "rejected"];

async function running(service: string, n: number): Promise<wire.Task[]> {
  return waitFor(`${n} running tasks of ${service}`, async () => {
    const { tasks } = await call(client, "listTasks", { service });
    const up = tasks.filter((t) => t.desiredState === "running" && t.status?.state === "running" && t.status.health !== "starting");
    const settling = tasks.filter((t) => !TERMINAL.includes(t.status!.state) && !up.includes(t));
    return up.length === n && settling.length === 0 ? up : undefined;
  });
}

const nodeStates = async () => Object.fromEntries((await call(client, "listNodes", {})).nodes.map((n) => [n.description!.hostname, n.status!.state]));
const hostOf = async (nodeId: string) => (await call(client, "listNodes", {})).nodes.find((n) => n.id === nodeId)!.description!.hostname;
const netnsOf = (hostname: string) => lab.nodes.find((n) => n.hostname === hostname)!.netns;
const sandboxesOf = (hostname: string) =>
  listNamespaces()
    .filter((ns) => ns.startsWith(`${netnsOf(hostname)}-`))
    .map((ns) => ns.slice(netnsOf(hostname).length + 1))
    .sort();
/** How many sessions the node's agent opened so far, from its log. */
const sessionsOpened = (hostname: string) => (readFileSync(join(lab.dir, `agent-${hostname}.log`), "utf8").match(/session open as node/g) ?? []).length;

/** Both loops of a case: through web's VIP from box's sandbox, and through the mesh from the client namespace. */
async function loops(): Promise<{ stop: () => Promise<void> }> {
  const vip = await requestLoop(boxSandbox, webVip, 8080);
  const mesh = await requestLoop(lab.client, meshAddr, 8080);
  return {
    async stop() {
      const [v, m] = [await vip.stop(), await mesh.stop()];
      expect(v.ok, "requests through the VIP").toBeGreaterThan(0);
      expect(m.ok, "requests through the mesh").toBeGreaterThan(0);
      expect({ vip: v.errors, mesh: m.errors }).toEqual({ vip: [], mesh: [] });
    },
  };
}

let webVip = "";
let boxSandbox = "";
/** Where the loops run: box's node, which the node faults leave alone. */
let boxHost = "";
let meshAddr = "";
/** The node the node faults hit. */
let victim = "";

/** Watches node states over a case: any state but ready is remembered. */
function watchNodes(): { stop: () => Promise<string[]> } {
  const seen = new Set<string>();
  let on = true;
  const done = (async () => {
    while (on) {
      try {
        for (const [host, state] of Object.entries(await nodeStates())) if (state !== "ready") seen.add(`${host} ${state}`);
      } catch {} // the manager is away
      await sleep(250);
    }
  })();
  return {
    async stop() {
      on = false;
      await done;
      return [...seen];
    },
  };
}

const liveIds = async () => (await Promise.all(["web", "box"].map((s) => running(s, s === "web" ? 3 : 1)))).flat().map((t) => t.id).sort();

kernelDescribe("faults on a 3-node lab", () => {
  // the default 5 s heartbeat first (the paused agent); the manager's first restart turns it to 1 s
  sharedLab({ name, nodes: 3 });

  beforeAll(async () => {
    await call(client, "createNetwork", { spec: { name: "faultnet" } });
    const web = (
      await call(client, "createService", {
        spec: {
          annotations: { name: "web" },
          taskTemplate: { container: { command: WHOAMI, healthcheck: HEALTHY } },
          replicated: { replicas: 3 },
          networks: [{ target: "faultnet" }],
          endpointSpec: { ports: [{ targetPort: 8080, publishedPort: 8080 }] },
        },
      })
    ).service!;
    webVip = addrOf(web.endpoint!.virtualIps.find((v) => !v.addr.startsWith("10.255."))!.addr);
    await call(client, "createService", {
      spec: { annotations: { name: "box" }, taskTemplate: { container: { command: ["sleep", "infinity"] } }, replicated: { replicas: 1 }, networks: [{ target: "faultnet" }] },
    });
    const [box] = await running("box", 1);
    await running("web", 3);
    boxHost = await hostOf(box!.nodeId);
    boxSandbox = `${netnsOf(boxHost)}-${box!.id}`;
    meshAddr = lab.nodes.find((n) => n.hostname === boxHost)!.addr;
    victim = lab.nodes.find((n) => n.hostname !== boxHost)!.hostname;
    // the views reach the nodes after the tasks run: the loops start once both paths answer
    const answers = (netns: string, addr: string) => spawnSync("ip", ["netns", "exec", netns, "curl", "-sf", "--max-time", "2", `http://${addr}:8080/`]).status === 0;
    await waitFor("web through its VIP from box", () => answers(boxSandbox, webVip));
    await waitFor("web through the mesh", () => answers(lab.client, meshAddr));
  }, 120_000);

  it("an agent paused for 10 s at the default 5 s heartbeat: its node is not marked down, no task moves, no request fails", async () => {
    const before = await liveIds();
    const traffic = await loops();
    const watch = watchNodes();
    nodePause(lab, victim);
    await sleep(10_000);
    nodeResume(lab, victim);
    await sleep(2000);
    expect(await watch.stop()).toEqual([]);
    await traffic.stop();
    expect(await liveIds()).toEqual(before);
  });

  for (const outageS of [2, 10, 30]) {
    it(`the manager killed and restarted after ${outageS} s: no node marked down, no task moved, no request failed`, async () => {
      const before = await liveIds();
      const opened = lab.nodes.map((n) => sessionsOpened(n.hostname));
      const traffic = await loops();
      killManager(lab);
      await sleep(outageS * 1000);
      lab.heartbeatMs = 1000; // the first restart turns the lab to a 1 s heartbeat: down after 3 s
      await startManager(lab);
      const restarted = Date.now();
      reconnect();
      const watch = watchNodes();
      await waitFor("every agent back in a new session", () => lab.nodes.every((n, i) => sessionsOpened(n.hostname) > opened[i]!), RESTART_GRACE_MS);
      console.log(`manager back after ${outageS} s: every agent in a new session ${Date.now() - restarted} ms after its restart`);
      // past the grace: a node that had not come back would be down by now
      await sleep(Math.max(0, restarted + RESTART_GRACE_MS + 2000 - Date.now()));
      expect(await watch.stop()).toEqual([]);
      await traffic.stop();
      expect(await liveIds()).toEqual(before);
    });
  }

  it("a node silent for 30 s: its tasks move; back, it keeps none of them, drains the one still serving a connection, and its kernel state is its view's", async () => {
    const traffic = await loops();
    const stale: wire.Task[] = [];
    for (const t of await running("web", 3)) if ((await hostOf(t.nodeId)) === victim) stale.push(t);
    expect(stale.length, `a web task on ${victim}`).toBeGreaterThan(0);

    // a connection through the victim's own mesh, held by its own task: tried until the mesh picks that task
    const victimAddr = lab.nodes.find((n) => n.hostname === victim)!.addr;
    let held: { p: ChildProcess; out: () => string } | undefined;
    for (let attempt = 0; attempt < 30 && !held; attempt++) {
      const p = spawn("ip", ["netns", "exec", lab.client, "node", KEEPALIVE, victimAddr, "8080"]);
      let out = "";
      p.stdout.on("data", (d: Buffer) => (out += d));
      await waitFor("an answer on the held connection", () => /task (\S+)/.exec(out));
      if (stale.some((t) => out.includes(`task ${t.id}`))) held = { p, out: () => out };
      else p.kill();
    }
    expect(held, "a connection to the victim's own task").toBeDefined();
    const heldTask = stale.find((t) => held!.out().includes(`task ${t.id}`))!;
    const answers = () => (held!.out().match(/^ok \d+$/gm) ?? []).length;

    try {
      nodePause(lab, victim);
      await waitFor(`${victim} down`, async () => (await nodeStates())[victim] === "down");
      const moved = await running("web", 3);
      for (const t of moved) expect(await hostOf(t.nodeId)).not.toBe(victim);
      await sleep(30_000 - 3000);

      nodeResume(lab, victim);
      await waitFor(`${victim} ready`, async () => (await nodeStates())[victim] === "ready");
      // the task still serving the held connection drains: it runs on, the connection answered
      const answered = answers();
      await sleep(1500);
      expect(answers(), "the held connection still answered").toBeGreaterThan(answered);
      expect(sandboxesOf(victim)).toContain(heldTask.id);
      expect(held!.out()).not.toContain("CLOSED");
    } finally {
      held?.p.kill();
    }
    // once its connection ends, it stops; the victim keeps nothing the view does not hold
    await waitFor("the drained task gone with its sandbox", () => !sandboxesOf(victim).includes(heldTask.id));
    const victimId = (await call(client, "inspectNode", { node: victim })).node!.id;
    const { tasks } = await call(client, "listTasks", {});
    const assigned = tasks.filter((t) => t.nodeId === victimId && !TERMINAL.includes(t.status!.state)).map((t) => t.id);
    await waitFor(`${victim}'s sandboxes to be its view's`, () => JSON.stringify(sandboxesOf(victim)) === JSON.stringify(["ingress", ...assigned].sort()));
    // its mesh balances to the web tasks that run now, and to none of those it ran before
    const now = await running("web", 3);
    const ingressAddr = (t: wire.Task) => addrOf(t.networks.find((a) => a.addresses[0]!.startsWith("10.255."))!.addresses[0]!);
    const gone = stale.map(ingressAddr).filter((a) => !now.map(ingressAddr).includes(a)); // an address may have been given again
    const holds = (rules: string, addr: string) => new RegExp(`\\b${addr.replaceAll(".", "\\.")}\\b`).test(rules);
    await waitFor("the victim's mesh balancing to the tasks of now", () => {
      const rules = sh(`${netnsOf(victim)}-ingress`, "nft", "list", "ruleset");
      return now.every((t) => holds(rules, ingressAddr(t))) && gone.every((a) => !holds(rules, a));
    });
    await traffic.stop();
  });

  it("a node removed while its agent runs: its tasks move, its agent stops them and removes all it made, and stays out, idle", async () => {
    // a task of its own: one only it may run
    await call(client, "createService", {
      spec: {
        annotations: { name: "pinned" },
        taskTemplate: { container: { command: ["sleep", "infinity"] }, placement: { constraints: [`node.hostname==${victim}`] } },
        replicated: { replicas: 1 },
        networks: [{ target: "faultnet" }],
      },
    });
    const [pinned] = await running("pinned", 1);
    expect(sandboxesOf(victim)).toContain(pinned!.id);
    // reported running once started: its process may be a moment from showing in the sandbox
    const taskPids = await waitFor("the pinned task's processes in its sandbox", () => {
      const pids = execFileSync("ip", ["netns", "pids", `${netnsOf(victim)}-${pinned!.id}`]).toString().trim().split("\n").filter(Boolean);
      return pids.length > 0 ? pids : undefined;
    });
    const traffic = await loops();
    const pid = agentPid(lab, victim);
    await call(client, "removeNode", { node: victim, force: true });
    const log = () => readFileSync(join(lab.dir, `agent-${victim}.log`), "utf8");
    await waitFor(`${victim}'s agent idle`, () => log().includes("removed from the cluster: no task and nothing of the cluster left on this node; idle"));
    expect(Object.keys(await nodeStates())).not.toContain(victim);
    await running("web", 3);
    // nothing of the cluster left on the node: no task, no sandbox, no overlay, no published port
    const ns = netnsOf(victim);
    expect(sandboxesOf(victim)).toEqual([]);
    expect(taskPids.filter((p) => existsSync(`/proc/${p}`)), "the pinned task's processes").toEqual([]);
    // its tasks leave the store with it; the pinned one's replacement waits for a node it may run on
    const pinnedNow = async () => (await call(client, "listTasks", { service: "pinned" })).tasks.map((t) => [t.id === pinned!.id, t.status?.state]);
    await waitFor("the pinned task's replacement pending", async () => JSON.stringify(await pinnedNow()) === JSON.stringify([[false, "pending"]]));
    expect(execFileSync("ip", ["-n", ns, "-o", "link", "show", "type", "vxlan"]).toString()).toBe("");
    expect(sh(ns, "nft", "list", "tables")).not.toContain("vipmesh");
    // the same agent, idle: not restarted by its supervisor, not joined again as a new node
    expect(agentPid(lab, victim)).toBe(pid);
    await sleep(2000);
    expect((await call(client, "listNodes", {})).nodes).toHaveLength(2);
    await traffic.stop();
  });
});
