// A lab's agents under their supervisors (apps/lab/src/supervisor.ts), in one
// 3-node lab shared by the cases: an agent killed with SIGKILL comes back by
// itself and adopts its task while a connection through the VIP goes on;
// `lab node stop` keeps it down and `lab node start` brings it back, also
// after crashes that leave stale pid files or an orphaned agent.

import { call, type wire } from "@vipmesh/api";
import { addrOf } from "@vipmesh/core";
import { waitFor as waitForBase } from "@vipmesh/testing";
import { kernelDescribe } from "@vipmesh/testing/kernel";
import { client, lab, sharedLab } from "./shared-lab.ts";
import { startTimeOf } from "../src/pid-file.ts";
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import {
  agentPid,
  killAgent,
  listNamespaces,
  nodeProcesses,
  nodeStart,
  nodeStop,
  supervisorPid,
} from "../src/lab.ts";

const name = `sup${randomBytes(3).toString("hex")}`;
const KEEPALIVE = fileURLToPath(new URL("./keepalive-client.mjs", import.meta.url));
/** The node that runs the VIP's task, whose agent is killed; the client's task runs on another. */
const TASK_NODE = "node1";
const CLIENT_NODE = "node2";
/** The node the stop/start cases use: no task of these services runs there. */
const SPARE = "node3";


const waitFor = <T>(what: string, check: () => T | Promise<T>, timeoutMs = 30_000) => waitForBase(what, check, timeoutMs, 50);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function running(service: string): Promise<wire.Task[]> {
  const { tasks } = await call(client, "listTasks", { service });
  return tasks.filter((t) => t.desiredState === "running" && t.status?.state === "running");
}
const sandboxOf = (t: wire.Task) => listNamespaces().find((ns) => ns.startsWith(lab.prefix) && ns.endsWith(t.id))!;
const agentLog = (host: string) => join(lab.dir, `agent-${host}.log`);
const logSize = (host: string) => statSync(agentLog(host)).size;
const logSince = (host: string, offset: number) => readFileSync(agentLog(host)).subarray(offset).toString();

/** Processes whose command line names the lab's directory: supervisors, agents, the manager. */
const labProcesses = (): number[] =>
  readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(`/run/vipmesh/${name}/`);
      } catch {
        return false;
      }
    })
    .map(Number);

/**
 * Waits until the node's agent is back: a new process (not `oldPid`), whose
 * session with the manager is open (its log says so, after `logFrom`), and
 * the node ready at the manager. Returns when each was first seen, in ms from `t0`.
 */
async function comeback(host: string, oldPid: number | undefined, logFrom: number, t0: number) {
  let newPidMs: number | undefined;
  const pid = await waitFor(`${host}'s agent back`, async () => {
    const pid = agentPid(lab, host);
    if (pid === undefined || pid === oldPid) return undefined;
    newPidMs ??= Date.now() - t0;
    if (!logSince(host, logFrom).includes("session open as node")) return undefined;
    const node = (await call(client, "inspectNode", { node: host })).node;
    return node?.status?.state === "ready" ? pid : undefined;
  }).catch((err: Error) => {
    const pidFiles = readdirSync(lab.dir)
      .filter((f) => f.endsWith(`-${host}.pid`))
      .map((f) => `${f}: ${readFileSync(join(lab.dir, f), "utf8").trim()}`);
    throw new Error(
      `${err.message}; ${host} runs ${JSON.stringify(nodeProcesses(lab, host))}, pid files ${JSON.stringify(pidFiles)}; its log since:\n${logSince(host, logFrom).slice(-2000)}`,
    );
  });
  return { pid, newPidMs: newPidMs!, readyMs: Date.now() - t0 };
}

/** The node runs exactly this supervisor and this agent, by what runs in its namespace (not by pid files). */
function expectOnly(host: string, supervisor: number | undefined, agent: number, logFrom: number): void {
  const found = nodeProcesses(lab, host);
  const argv = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").slice(0, 200);
    } catch {
      return "(gone)";
    }
  };
  const why = () =>
    `${host} runs ${JSON.stringify(found)}, expected ${JSON.stringify({ supervisors: [supervisor], agents: [agent] })}:\n` +
    `${[...found.supervisors, ...found.agents].map((p) => `${p}: ${argv(p)}`).join("\n")}\n${host}'s log since:\n${logSince(host, logFrom).slice(-2000)}`;
  expect(found, why()).toEqual({ supervisors: [supervisor], agents: [agent] });
}

kernelDescribe("a lab's agents under their supervisors", () => {
  // the manager's default heartbeat (5 s, down after 15 s): an agent back within that is never noticed as down
  // after it: no supervisor, agent or manager of the lab is left
  sharedLab({ name, nodes: 3 }, () => expect(labProcesses()).toEqual([]));

  it("an agent killed with SIGKILL comes back by itself and adopts its task; a connection through the VIP is never dropped", async () => {
    await call(client, "createNetwork", { spec: { name: "supnet" } });
    const spec = (name: string, node: string) => ({
      annotations: { name },
      taskTemplate: { container: { command: ["vipmesh", "whoami", "--port", "8080"] }, placement: { constraints: [`node.hostname==${node}`] } },
      replicated: { replicas: 1 },
      networks: [{ target: "supnet" }],
    });
    const web = (await call(client, "createService", { spec: spec("supweb", TASK_NODE) })).service!;
    await call(client, "createService", { spec: spec("supbox", CLIENT_NODE) });
    const [task] = await waitFor("supweb running", async () => ((await running("supweb")).length === 1 ? running("supweb") : undefined));
    const [box] = await waitFor("supbox running", async () => ((await running("supbox")).length === 1 ? running("supbox") : undefined));
    const vip = addrOf(web.endpoint!.virtualIps[0]!.addr);
    await waitFor("the VIP to answer in the client's task", () => {
      const r = spawnSync("ip", ["netns", "exec", sandboxOf(box!), "curl", "-s", "--max-time", "2", `http://${vip}:8080/`], { encoding: "utf8" });
      return r.stdout.includes(`Task: ${task!.id}`);
    });

    // one keep-alive connection from the client's task to the VIP, a request every 100 ms, until it breaks
    const conn = spawn("ip", ["netns", "exec", sandboxOf(box!), process.execPath, KEEPALIVE, vip, "8080"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    conn.stdout.on("data", (d: Buffer) => (out += d));
    conn.stderr.on("data", (d: Buffer) => (out += d));
    const count = () => Number(/ok (\d+)\n$/.exec(out)?.[1] ?? 0);
    try {
      await waitFor("the connection to carry requests", () => count() >= 3).catch((err: Error) => {
        throw new Error(`${err.message}; the client said: ${out.slice(-500)}`);
      });

      const supervisor = supervisorPid(lab, TASK_NODE);
      const from = logSize(TASK_NODE);
      const t0 = Date.now();
      const killed = killAgent(lab, TASK_NODE); // the agent itself, not its supervisor
      expect(killed).toBeDefined();
      const back = await comeback(TASK_NODE, killed, from, t0);
      // adopted: the same task runs, not a replacement; the new agent says it adopted it
      await waitFor("the task adopted", () => logSince(TASK_NODE, from).includes("adopted 1 running task(s)"));
      const { tasks } = await call(client, "listTasks", { service: "supweb" });
      expect(tasks.map((t) => [t.id, t.desiredState, t.status?.state])).toEqual([[task!.id, "running", "running"]]);
      console.log(
        `agent comeback after SIGKILL: a new agent process after ${back.newPidMs} ms, its session open and the node ready after ${back.readyMs} ms, its task adopted`,
      );

      expect(supervisorPid(lab, TASK_NODE)).toBe(supervisor);
      expectOnly(TASK_NODE, supervisor, back.pid, from);
      expect(logSince(TASK_NODE, from)).toContain(`supervisor: agent (pid ${killed}) killed by SIGKILL after`);
      // the connection still carries requests, and never broke
      const seen = count();
      await waitFor("more requests on the same connection", () => count() > seen + 10);
      expect(out).not.toContain("CLOSED");
      expect(out).not.toContain("ERROR");
    } finally {
      conn.kill();
    }
  });

  it("lab node stop: the agent stays down, not restarted; lab node start: it comes back", async () => {
    const before = supervisorPid(lab, SPARE);
    expect(before).toBeDefined();
    const from = logSize(SPARE);
    nodeStop(lab, SPARE);
    expect(supervisorPid(lab, SPARE)).toBeUndefined();
    expect(agentPid(lab, SPARE)).toBeUndefined();
    // a few seconds: no supervisor left to restart it, nothing comes back
    for (const end = Date.now() + 4000; Date.now() < end; await sleep(200)) {
      expect(nodeProcesses(lab, SPARE)).toEqual({ supervisors: [], agents: [] });
    }
    expect(logSince(SPARE, from)).toContain("not restarting it");

    const started = logSize(SPARE);
    const t0 = Date.now();
    nodeStart(lab, SPARE);
    const back = await comeback(SPARE, undefined, started, t0);
    expect(supervisorPid(lab, SPARE)).not.toBe(before);
    expectOnly(SPARE, supervisorPid(lab, SPARE), back.pid, started);
  });

  it("a crash then lab node start: the supervisor restarts the agent, and node start starts no second one", async () => {
    const supervisor = supervisorPid(lab, SPARE);
    const from = logSize(SPARE);
    const t0 = Date.now();
    const killed = killAgent(lab, SPARE);
    nodeStart(lab, SPARE);
    const back = await comeback(SPARE, killed, from, t0);
    expect(supervisorPid(lab, SPARE)).toBe(supervisor);
    expectOnly(SPARE, supervisor, back.pid, from);
  });

  it("lab node start after crashes that leave stale pid files or an orphaned agent: one supervised agent again", async () => {
    // gone as the lab judges it: not running (an exiting process loses its command line before it is a zombie)
    const gone = (pid: number) => waitFor(`pid ${pid} gone`, () => startTimeOf(pid) === undefined);

    // the supervisor and its agent both killed: both pid files are left, naming dead processes
    const supervisor = supervisorPid(lab, SPARE)!;
    const agent = agentPid(lab, SPARE)!;
    process.kill(supervisor, "SIGKILL");
    process.kill(-agent, "SIGKILL");
    await gone(supervisor);
    await gone(agent);
    expect(existsSync(join(lab.dir, `supervisor-${SPARE}.pid`))).toBe(true);
    expect(existsSync(join(lab.dir, `agent-${SPARE}.pid`))).toBe(true);
    let from = logSize(SPARE);
    nodeStart(lab, SPARE);
    const back = await comeback(SPARE, agent, from, Date.now());
    const second = supervisorPid(lab, SPARE)!;
    expect(second).not.toBe(supervisor);
    expectOnly(SPARE, second, back.pid, from);

    // the supervisor alone killed: its agent runs on, orphaned; node start replaces it with a supervised one
    process.kill(second, "SIGKILL");
    await gone(second);
    expect(agentPid(lab, SPARE)).toBe(back.pid);
    from = logSize(SPARE);
    nodeStart(lab, SPARE);
    const again = await comeback(SPARE, back.pid, from, Date.now());
    await gone(back.pid);
    expectOnly(SPARE, supervisorPid(lab, SPARE), again.pid, from);
  });
});
