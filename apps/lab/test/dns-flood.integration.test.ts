// The agent survives its tasks (issue 19), on a real 2-node lab: on node1, six
// tasks each hold as many TCP connections to their DNS as they can, trickling
// bytes, and a seventh floods it with UDP queries. Meanwhile node1's agent
// keeps running (same process), holds no more descriptors than its stated
// budget per sandbox allows, a neighbouring sandbox's DNS answers every query,
// and the manager never marks the node down (heartbeats every second: down
// after 3 s without one).

import { call, type wire } from "@vipmesh/api";
import { addrOf } from "@vipmesh/core";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect, it } from "vitest";
import { agentPid, listNamespaces } from "../src/lab.ts";
import { DNS_FLOOD, DNS_PROBE, type DnsProbeResult, floodCounts, waitFor as waitForBase } from "@vipmesh/testing";
import { kernelDescribe } from "@vipmesh/testing/kernel";
import { client, lab, sharedLab } from "./shared-lab.ts";

const name = `f${randomBytes(3).toString("hex")}`;

const waitFor = <T>(what: string, check: () => T | Promise<T>, timeoutMs = 30_000) => waitForBase(what, check, timeoutMs, 100);
const ON_NODE1 = { constraints: ["node.hostname==node1"] };
const HOGS = 6;

async function running(service: string, n: number): Promise<wire.Task[]> {
  return waitFor(`${n} running tasks of ${service}`, async () => {
    const { tasks } = await call(client, "listTasks", { service });
    const up = tasks.filter((t) => t.desiredState === "running" && t.status?.state === "running");
    return up.length === n ? up : undefined;
  });
}

const sandboxOf = (t: wire.Task) => listNamespaces().find((ns) => ns.startsWith(lab.prefix) && ns.endsWith(t.id))!;
const node1 = () => lab.nodes.find((n) => n.hostname === "node1")!;
const descriptors = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;
/** The last line of counts a flooding task wrote to its log. */
const countsOf = (t: wire.Task) => floodCounts(join(node1().stateDir, "tasks", t.id, "log"));

/** Runs the probe in a sandbox (asynchronously, so the test can sample the agent meanwhile). */
async function probe(sandbox: string, count: number, intervalMs: number, names: string[]): Promise<DnsProbeResult[]> {
  const { stdout } = await promisify(execFile)("ip", ["netns", "exec", sandbox, process.execPath, DNS_PROBE, String(count), String(intervalMs), "2000", names.join(",")], {
    timeout: count * intervalMs + 30_000,
  });
  return JSON.parse(stdout) as DnsProbeResult[];
}

kernelDescribe("tasks flooding their DNS on a 2-node lab", () => {
  let budget = 0;
  let base = 0;
  let quiet: wire.Task;
  /** The flooding tasks. */
  let flooders: wire.Task[] = [];

  sharedLab({ name, nodes: 2, heartbeatMs: 1000 });

  it("the agent states its descriptor budget per sandbox, and how many sandboxes its open-files limit carries at it", () => {
    const log = readFileSync(join(lab.dir, "agent-node1.log"), "utf8");
    const m = /open files: up to (\d+) \(hard limit \S+\), (\d+) open: room for (\d+) task sandboxes at (\d+) descriptors each/.exec(log);
    expect(m, log.slice(-2000)).not.toBeNull();
    const [soft, open, room] = [Number(m![1]), Number(m![2]), Number(m![3])];
    budget = Number(m![4]);
    // at least its DNS: a UDP socket, a TCP listener and 32 connections; and small enough that the
    // systemd unit's LimitNOFILE (65536) carries 500 sandboxes (the bound below is only as good as this)
    expect(budget).toBeGreaterThanOrEqual(34);
    expect(budget).toBeLessThanOrEqual(128);
    expect(room).toBe(Math.floor((soft - open) / budget));
  });

  it("six TCP hogs and a UDP flood on one node: the agent keeps running within its budget, a neighbour's DNS answers every query, the node stays up", async () => {
    expect(budget).toBeGreaterThan(0);
    await call(client, "createNetwork", { spec: { name: "floodnet" } });
    const service = (name: string, replicas: number, command: string[]) =>
      call(client, "createService", {
        spec: { annotations: { name }, taskTemplate: { container: { command }, placement: ON_NODE1 }, replicated: { replicas }, networks: [{ target: "floodnet" }] },
      });
    const quietSvc = (await service("quiet", 1, ["vipmesh", "whoami", "--port", "8080"])).service!;
    quiet = (await running("quiet", 1))[0]!;
    const neighbour = sandboxOf(quiet);
    await waitFor("the neighbour's DNS answering", async () => (await probe(neighbour, 1, 0, ["quiet"]))[0]?.rcode === "NOERROR");

    // before the flood: what node1's agent holds with the neighbour alone (the least of a few samples)
    // node1's agent (its supervisor would start a new one, with another pid, were it to end)
    const pid = agentPid(lab, "node1")!;
    expect(pid).toBeGreaterThan(0);
    const samples: number[] = [];
    for (let i = 0; i < 10; i++) {
      samples.push(descriptors(pid));
      await new Promise((r) => setTimeout(r, 100));
    }
    base = Math.min(...samples);

    // watched from now on: the agent's descriptors and process, every node's state at the manager
    let peak = 0;
    const states = new Set<string>();
    let watching = true;
    const watch = (async () => {
      while (watching) {
        peak = Math.max(peak, descriptors(pid));
        const { nodes } = await call(client, "listNodes", {}, { deadline: Date.now() + 5000 });
        for (const n of nodes) states.add(`${n.description?.hostname} ${n.status?.state}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      const hogSvc = (await service("tcphog", HOGS, ["node", DNS_FLOOD, "tcp"])).service!;
      const floodSvc = (await service("udpflood", 1, ["node", DNS_FLOOD, "udp"])).service!;
      const hogs = await running("tcphog", HOGS);
      const [flood] = await running("udpflood", 1);
      flooders = [...hogs, flood!];
      // in full swing: every hog has had the agent close many of its connections, the flood has sent thousands
      await waitFor("the flood in full swing", () => hogs.every((h) => (countsOf(h)?.closed ?? 0) > 200) && (countsOf(flood!)?.sent ?? 0) > 5000, 60_000);

      // the neighbour: 200 queries over 10 s, each given 2 s
      const vips = new Map(
        [quietSvc, hogSvc, floodSvc].map((s) => [s.spec!.annotations!.name, addrOf(s.endpoint!.virtualIps[0]!.addr)] as [string, string]),
      );
      const results = await probe(neighbour, 200, 50, ["quiet", "tcphog", "udpflood", "tasks.quiet"]);
      const want = (r: DnsProbeResult) =>
        r.name.startsWith("probe-") ? { rcode: "NXDOMAIN", addrs: [] } : { rcode: "NOERROR", addrs: [r.name === "tasks.quiet" ? addrOf(quiet.networks[0]!.addresses[0]!) : vips.get(r.name)!] };
      const wrong = results.filter((r) => r.ms === null || r.rcode !== want(r).rcode || r.addrs.join() !== want(r).addrs.join());
      expect(wrong, `${wrong.length} of ${results.length} queries unanswered or wrong`).toEqual([]);
      expect(results.filter((r) => r.proto === "tcp")).toHaveLength(50);

      // the hogs tried hard: thousands of connections between them, most closed by the agent
      const hogCounts = hogs.map((h) => countsOf(h)!);
      expect(hogCounts.reduce((n, c) => n + c.opened!, 0)).toBeGreaterThan(HOGS * 200);
      expect(countsOf(flood!)!.sent).toBeGreaterThan(5000);
    } finally {
      watching = false;
      await watch;
    }
    // the same agent process throughout, within base + 7 sandboxes × the budget; every node ready throughout
    expect(agentPid(lab, "node1")).toBe(pid);
    expect(peak, `peak ${peak} descriptors, base ${base}, budget ${budget}`).toBeLessThanOrEqual(base + (HOGS + 1) * budget);
    expect([...states].sort()).toEqual(["node1 ready", "node2 ready"]);
  });

  it("removing the flooding services gives the agent's descriptors back", async () => {
    expect(base).toBeGreaterThan(0);
    await call(client, "removeService", { service: "tcphog" });
    await call(client, "removeService", { service: "udpflood" });
    expect(flooders).toHaveLength(HOGS + 1);
    await waitFor("the flooding tasks' sandboxes removed", () => !listNamespaces().some((ns) => flooders.some((t) => ns.endsWith(t.id))));
    // the neighbour's sandbox alone again: what the agent held before, give or take a command a sync runs
    await waitFor("the agent back to its base", () => descriptors(agentPid(lab, "node1")!) <= base + 3);
    expect((await probe(sandboxOf(quiet), 4, 50, ["quiet"])).every((r) => r.rcode === "NOERROR")).toBe(true);
  });
});
