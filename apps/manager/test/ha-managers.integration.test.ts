// Managers sharing one etcd, started in this process as `vipmesh manager
// --store etcd` starts them: one leads (its orchestrator and liveness judge
// run), every one serves the API and agent sessions, node liveness does not
// depend on which manager holds a session, and without etcd's quorum reads
// are answered marked stale while writes fail at once. Image ls, rm and load
// through one manager reach nodes whose sessions another holds.

import type * as grpc from "@grpc/grpc-js";
import { call, clusterClient, type wire, type ClusterServiceClient, credentialsFromDir, parseTaskLogLine, staleReads } from "@vipmesh/api";
import { ClusterCa } from "@vipmesh/pki/signing";
import { SimAgent, type SimAgentOptions, simImage, tempDir, waitFor } from "@vipmesh/testing";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { DRAINS_PREFIX } from "../src/ha/drain-acks.ts";
import { ALIVE_PREFIX, MANAGERS_PREFIX } from "../src/ha/etcd-directory.ts";
import { LEADER_KEY } from "../src/ha/leadership.ts";
import { type RunningManager, startManager } from "../src/index.ts";
import { LOAD_WINDOW_BYTES } from "../src/image-relay.ts";
import { restartGraceMs } from "../src/node-health.ts";
import { writeStoreKey } from "../src/store/secret-box.ts";
import { etcdDescribe, startTestEtcd, type TestEtcd } from "@vipmesh/testing/etcd";
import { failure, HEARTBEAT_MS, serviceSpec } from "./harness.ts";

interface Manager {
  name: string;
  running: RunningManager;
  client: ClusterServiceClient;
  stop(): Promise<void>;
}

etcdDescribe("managers on etcd", () => {
  let etcd: TestEtcd;
  const keyDir = tempDir("vipmesh-ha-key-");
  const keyFile = join(keyDir.path, "store.key");
  /** The cluster CA `vipmesh ca init` would make; each test's first manager imports it into the store. */
  const caDir = join(keyDir.path, "ca");
  let managers: Manager[] = [];
  let agents: SimAgent[] = [];
  let nextAddr = 1;

  beforeAll(async () => {
    writeStoreKey(keyFile);
    await ClusterCa.create(caDir);
    etcd = await startTestEtcd();
  }, 60_000);
  afterAll(async () => {
    await etcd?.stop();
    keyDir.remove();
  });
  afterEach(async () => {
    etcd.member.signal("SIGCONT");
    for (const a of agents) a.stop();
    agents = [];
    for (const m of managers) await m.stop();
    managers = [];
    await etcd.client().delete().prefix("/vipmesh/");
  }, 30_000);

  async function startOne(name: string, keyRotationMs?: number): Promise<Manager> {
    const dir = tempDir(`vipmesh-ha-${name}-`);
    const running = await startManager({
      dataDir: dir.path,
      hostname: name,
      listen: ["127.0.0.1:0"],
      heartbeatPeriodMs: HEARTBEAT_MS,
      restartDelayMs: 50,
      keyRotationMs,
      joinRate: { count: 1000, windowMs: 60_000 },
      store: { kind: "etcd", endpoints: [etcd.endpoint], storeKeyFile: keyFile, caDir },
    });
    const client = clusterClient(running.addresses[0]!, credentialsFromDir(running.adminTlsDir!));
    let stopped = false;
    const m: Manager = {
      name,
      running,
      client,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        client.close();
        await running.stop();
        dir.remove();
      },
    };
    managers.push(m);
    return m;
  }

  /** Manager ID by hostname, from their directory entries. */
  async function ids(): Promise<Map<string, string>> {
    const entries = await etcd.client().getAll().prefix(MANAGERS_PREFIX).strings();
    return new Map(Object.values(entries).map((v) => JSON.parse(v) as { id: string; hostname: string }).map((e) => [e.hostname, e.id]));
  }

  const leaderId = () => etcd.client().get(LEADER_KEY).string();

  async function leaderName(): Promise<string | undefined> {
    const id = await leaderId();
    return [...(await ids())].find(([, v]) => v === id)?.[0];
  }

  async function addAgent(m: Manager, hostname: string, options: Partial<SimAgentOptions> = {}): Promise<SimAgent> {
    const token = (await call(m.client, "getJoinToken", { role: "worker" })).token;
    const agent = await new SimAgent(m.running.addresses[0]!, { hostname, addr: `192.0.2.${nextAddr++}`, token, ...options }).start();
    agents.push(agent);
    return agent;
  }

  const nodeState = async (m: Manager, hostname: string) =>
    (await call(m.client, "listNodes", {})).nodes.find((n) => n.description?.hostname === hostname)?.status?.state;

  it("lists every manager reachable, one leading; writes through any manager; only the leader's orchestrator places tasks", async () => {
    const m1 = await startOne("m1");
    await waitFor("m1 to lead", async () => (await leaderName()) === "m1", 5000);
    const m2 = await startOne("m2");
    const byName = await waitFor("both managers listed", async () => ((await ids()).size === 2 ? ids() : undefined), 5000);
    const alive = await etcd.client().getAll().prefix(ALIVE_PREFIX).keys();
    expect(alive.sort()).toEqual([...byName.values()].map((id) => ALIVE_PREFIX + id).sort());

    await addAgent(m1, "n1");
    await addAgent(m2, "n2");
    await call(m2.client, "createService", { spec: serviceSpec("web", { replicated: { replicas: 4 } }) });
    await waitFor(
      "4 running tasks, seen from both managers",
      async () => {
        for (const m of [m1, m2]) {
          const tasks = (await call(m.client, "listTasks", { service: "web" })).tasks;
          if (tasks.filter((t) => t.status?.state === "running").length !== 4) throw new Error(`${m.name} sees ${tasks.map((t) => `${t.slot}:${t.status?.state} ${t.status?.message}`).join(", ")}`);
        }
        return true;
      },
      10_000,
    );
    // one orchestrator at work: one task per slot, nothing made twice
    const tasks = (await call(m1.client, "listTasks", { service: "web" })).tasks;
    expect(tasks.map((t) => t.slot).sort()).toEqual([1, 2, 3, 4]);
  }, 40_000);

  it("marks down a node whose session ended on a manager that does not lead, and moves its tasks", async () => {
    const m1 = await startOne("m1");
    await waitFor("m1 to lead", async () => (await leaderName()) === "m1", 5000);
    const judgingFrom = Date.now() + restartGraceMs(HEARTBEAT_MS); // a new leader judges no node before its restart grace
    const m2 = await startOne("m2");
    const n1 = await addAgent(m2, "n1");
    await addAgent(m1, "n2");
    await call(m1.client, "createService", { spec: serviceSpec("web", { replicated: { replicas: 2 } }) });
    await waitFor("tasks on both nodes", async () => (await call(m1.client, "listTasks", { service: "web" })).tasks.filter((t) => t.status?.state === "running").length === 2, 10_000);

    await new Promise((r) => setTimeout(r, judgingFrom - Date.now()));
    const stoppedAt = Date.now();
    n1.stop();
    await waitFor("n1 down", async () => (await nodeState(m2, "n1")) === "down", 5000, 20);
    const took = Date.now() - stoppedAt;
    expect(took).toBeGreaterThanOrEqual(3 * HEARTBEAT_MS); // the leader's window, not sooner
    expect(took).toBeLessThan(3000);
    await waitFor(
      "both tasks on n2",
      async () => {
        const nodes = (await call(m1.client, "listNodes", {})).nodes;
        const n2 = nodes.find((n) => n.description?.hostname === "n2")!.id;
        const running = (await call(m1.client, "listTasks", { service: "web" })).tasks.filter((t) => t.desiredState === "running" && t.status?.state === "running");
        return running.length === 2 && running.every((t) => t.nodeId === n2);
      },
      10_000,
    );
  }, 40_000);

  it("a node that goes silent while the leader changes is still marked down by the new leader, after the restart grace", async () => {
    const m1 = await startOne("m1");
    await waitFor("m1 to lead", async () => (await leaderName()) === "m1", 5000);
    const m2 = await startOne("m2");
    const n1 = await addAgent(m1, "n1");
    await addAgent(m2, "n2");
    await waitFor("n1 ready", async () => (await nodeState(m2, "n1")) === "ready", 5000);

    // the leader goes (its lease with it: m2 takes over at once) and n1, whose session it held, falls silent
    n1.stop();
    await m1.stop();
    const handoverAt = Date.now();
    await waitFor("m2 to lead", async () => (await leaderName()) === "m2", 5000, 20);
    await new Promise((r) => setTimeout(r, 3 * HEARTBEAT_MS + 500));
    expect(await nodeState(m2, "n1")).toBe("ready"); // not judged before the grace: agents of a dead manager need time to come back
    await waitFor("n1 down", async () => (await nodeState(m2, "n1")) === "down", restartGraceMs(HEARTBEAT_MS) + 5000, 50);
    expect(Date.now() - handoverAt).toBeGreaterThanOrEqual(restartGraceMs(HEARTBEAT_MS) - 500);
    expect(await nodeState(m2, "n2")).toBe("ready");
  }, 40_000);

  it("rotates the overlay keys step by step, each step applied by the nodes of every manager before the next", async () => {
    // the first rotation 3 s after the cluster's first key: time enough for both nodes to hold the network first
    const m1 = await startOne("m1", 3000);
    await waitFor("m1 to lead", async () => (await leaderName()) === "m1", 5000);
    const m2 = await startOne("m2", 3000);
    const a1 = await addAgent(m1, "n1");
    const a2 = await addAgent(m2, "n2");
    type Keys = { ids: number[]; tx: number };
    const seen = new Map<SimAgent, Keys[]>([[a1, []], [a2, []]]);
    for (const a of [a1, a2]) {
      a.on("assignment", (m: wire.Assignment) => {
        if (m.encryption) seen.get(a)!.push({ ids: m.encryption.keys.map((k) => k.id), tx: m.encryption.txKeyId });
      });
    }
    await call(m2.client, "createNetwork", { spec: { name: "secret", options: { encrypted: "" } } });
    await call(m2.client, "createService", {
      spec: { annotations: { name: "vault" }, taskTemplate: { container: { command: ["x"] } }, replicated: { replicas: 2 }, networks: [{ target: "secret" }] },
    });
    const holds = (a: SimAgent) => [...a.view.networks.values()].some((n) => n.encrypted);
    await waitFor("both nodes hold the network", () => holds(a1) && holds(a2), 10_000);
    expect(seen.get(a2)!.every((k) => k.ids.length === 1)).toBe(true);

    // the follower's node slow to apply: the leader's rotation waits for it at every step (whichever step comes
    // first after the hold: on a loaded machine the first rotation may have begun before both nodes held the network)
    a2.holdAcks();
    const heldAt = seen.get(a2)!.length;
    const last = (a: SimAgent) => JSON.stringify(seen.get(a)!.at(-1));
    await waitFor("a rotation step on both nodes, the follower's not applied", () => seen.get(a2)!.length > heldAt && last(a1) === last(a2), 10_000);
    const atHold = seen.get(a1)!.length;
    await new Promise((r) => setTimeout(r, 1000));
    expect(seen.get(a1)!.length).toBe(atHold); // no second step while a node of another manager has not applied the first
    a2.releaseAcks();
    await waitFor("a whole rotation on both", () => [a1, a2].every((a) => seen.get(a)!.filter((k) => k.ids.length === 1).length >= 2), 15_000);
    for (const a of [a1, a2]) {
      const steps = seen.get(a)!;
      const i = steps.findIndex((k) => k.ids.length === 2);
      const [before, add, send, drop] = steps.slice(i - 1, i + 3);
      const next = add!.ids.find((id) => id !== before!.tx)!;
      expect(add).toEqual({ ids: [before!.tx, next], tx: before!.tx });
      expect(send).toEqual({ ids: [before!.tx, next], tx: next });
      expect(drop).toEqual({ ids: [next], tx: next });
    }
  }, 60_000);

  it("drains a stopping task only once the nodes of every manager applied the view without it", async () => {
    const m1 = await startOne("m1");
    await waitFor("m1 to lead", async () => (await leaderName()) === "m1", 5000);
    const m2 = await startOne("m2");
    await waitFor("both managers listed", async () => (await ids()).size === 2, 5000);
    await addAgent(m1, "n1");
    const n2 = await addAgent(m2, "n2");
    await call(m1.client, "createNetwork", { spec: { name: "net" } });
    await call(m1.client, "createService", { spec: serviceSpec("web", { networks: [{ target: "net" }], replicated: { replicas: 2 } }) });
    const tasks = async () => (await call(m1.client, "listTasks", { service: "web" })).tasks;
    await waitFor("2 running tasks", async () => (await tasks()).filter((t) => t.status?.state === "running").length === 2, 10_000);

    // n2, held by the follower, is slow to apply: the leader's own sessions acknowledge, m2's do not
    n2.holdAcks();
    const s = (await call(m1.client, "inspectService", { service: "web" })).service!;
    await call(m1.client, "updateService", { service: "web", version: s.version, spec: { ...s.spec!, replicated: { replicas: 1 } } });
    const stopping = await waitFor("slot 2 told to stop", async () => (await tasks()).find((t) => t.slot === 2 && t.desiredState === "shutdown"), 5000);
    await waitFor("n2 to receive the change", () => [...n2.view.endpoints.values()].some((e) => e.taskId === stopping.id && !e.ready), 5000);
    await new Promise((r) => setTimeout(r, 1000));
    const held = (await tasks()).find((t) => t.id === stopping.id)!;
    expect(held.drained).toBe(false);
    expect(held.status?.state).toBe("running");

    n2.releaseAcks();
    await waitFor(
      "drained, then stopped",
      async () => {
        const t = (await tasks()).find((x) => x.id === stopping.id)!;
        return t.drained && t.status?.state === "shutdown";
      },
      5000,
    );
    // the leader deletes a drained task's acknowledgements
    await waitFor("no drain keys left", async () => (await etcd.client().getAll().prefix(DRAINS_PREFIX).keys()).length === 0, 5000);
  }, 40_000);

  it("image ls, rm and load through one manager reach nodes whose sessions the other holds; rm refused there leaves every node as it was", async () => {
    const m1 = await startOne("m1");
    const m2 = await startOne("m2");
    await waitFor("both managers listed", async () => (await ids()).size === 2, 5000);
    const loads = { loadImage: () => ["docker.io/library/new:1"] };
    const n1 = await addAgent(m1, "n1", loads);
    const n2 = await addAgent(m2, "n2", loads);
    for (const n of [n1, n2]) n.images.set("docker.io/library/web:1", simImage("docker.io/library/web:1"));
    n1.images.set("docker.io/library/old:2", simImage("docker.io/library/old:2"));
    const spec = serviceSpec("web", { replicated: { replicas: 1 } });
    spec.taskTemplate = { container: { image: "web:1", command: [] }, placement: { constraints: ["node.hostname==n2"] } };
    await call(m1.client, "createService", { spec });
    await waitFor("web.1 running on n2", async () => (await call(m1.client, "listTasks", { service: "web" })).tasks.some((t) => t.status?.state === "running"), 10_000);
    const byHost = <T extends { hostname: string }>(nodes: T[]) => [...nodes].sort((a, b) => a.hostname.localeCompare(b.hostname));

    // ls through either manager: both nodes, with the tasks that use each image
    for (const m of [m1, m2]) {
      const res = byHost((await call(m.client, "listImages", {})).nodes);
      expect(res.map((n) => [n.hostname, n.error, n.images.map((i) => [i.name, i.tasks])])).toEqual([
        ["n1", "", [["docker.io/library/web:1", []], ["docker.io/library/old:2", []]]],
        ["n2", "", [["docker.io/library/web:1", ["web.1"]]]],
      ]);
    }

    // rm through m1 refused by n2 (m2's): nothing removed anywhere; rm through m2 removes from n1 (m1's)
    expect(await failure(call(m1.client, "removeImage", { image: "web:1", nodes: [], force: false }))).toEqual({
      code: "FAILED_PRECONDITION",
      details: expect.stringMatching(/^n2: image web:1 is in use by tasks web\.1/),
    });
    expect([n1.images.has("docker.io/library/web:1"), n2.images.has("docker.io/library/web:1")]).toEqual([true, true]);
    const removed = await call(m2.client, "removeImage", { image: "old:2", nodes: [], force: false });
    expect(removed.nodes.map((n) => [n.hostname, n.images, n.error])).toEqual([["n1", ["docker.io/library/old:2"], ""]]);
    expect(n1.images.has("docker.io/library/old:2")).toBe(false);
    expect(await failure(call(m1.client, "removeImage", { image: "old:2", nodes: [], force: false }))).toEqual({ code: "NOT_FOUND", details: "No such image: old:2" });

    // a load through m1 reaches n2 through m2, in order; each node answers
    const chunks = Array.from({ length: 40 }, (_, i) => Buffer.alloc(1024 * 1024, i)); // as the CLI sends them
    n2.holdImageAcks();
    const l = startLoad(m1.client, chunks);
    const received = (agent: SimAgent) => [...agent.imageLoads.values()].reduce((n, x) => n + x.pieces.length, 0);
    await waitFor("n2's window full", () => received(n2) >= LOAD_WINDOW_BYTES / chunks[0]!.length || undefined, 10_000);
    await new Promise((r) => setTimeout(r, 500));
    const taken = received(n1);
    expect(taken).toBeLessThan(chunks.length); // the caller waits for n2, held by the other manager
    await new Promise((r) => setTimeout(r, 300));
    expect(received(n1)).toBe(taken);
    n2.releaseImageAcks();
    const res = byHost((await l.answer).nodes);
    expect(res.map((n) => [n.hostname, n.images, n.error])).toEqual([
      ["n1", ["docker.io/library/new:1"], ""],
      ["n2", ["docker.io/library/new:1"], ""],
    ]);
    for (const agent of [n1, n2]) {
      const [got] = [...agent.imageLoads.values()];
      expect(got?.seqs).toEqual(chunks.map((_, i) => i + 1));
      expect(Buffer.concat(got!.pieces).equals(Buffer.concat(chunks))).toBe(true);
    }

    // a load cancelled through m1 is abandoned on n2 too
    const cancelled = startLoad(m1.client, [Buffer.from("part")], false);
    await waitFor("both nodes got the first piece", () => (n1.imageLoads.size === 2 && n2.imageLoads.size === 2) || undefined, 5000);
    cancelled.stream.cancel();
    await cancelled.answer.catch(() => {});
    await waitFor("both loads aborted", () => [n1, n2].every((n) => [...n.imageLoads.values()][1]?.aborted) || undefined, 5000);

    // a node no manager holds: not connected, as with one manager
    n2.stop();
    await waitFor(
      "n2 not connected, seen from m1",
      async () => /is not connected to the manager/.test((await call(m1.client, "listImages", { nodes: ["n2"] })).nodes[0]?.error ?? ""),
      5000,
    );
  }, 60_000);

  it("service logs through one manager reach nodes whose sessions the other holds, and only those of its own with local_only", async () => {
    const m1 = await startOne("m1");
    const m2 = await startOne("m2");
    await waitFor("both managers listed", async () => (await ids()).size === 2, 5000);
    const n1 = await addAgent(m1, "n1");
    const n2 = await addAgent(m2, "n2");
    await call(m1.client, "createService", { spec: serviceSpec("chatty", { replicated: { replicas: 2 } }) });
    const tasks = await waitFor(
      "a running task on each node",
      async () => {
        const running = (await call(m1.client, "listTasks", { service: "chatty" })).tasks.filter((t) => t.status?.state === "running");
        return new Set(running.map((t) => t.nodeId)).size === 2 ? running : undefined;
      },
      10_000,
    );
    for (const t of tasks) (t.nodeId === n1.nodeId ? n1 : n2).logs.set(t.id, `hello from ${t.nodeId === n1.nodeId ? "n1" : "n2"}\n`);
    /** The text each task logged, as the manager relayed it, once the stream ended. */
    const logsThrough = (m: Manager, localOnly: boolean) =>
      new Promise<Map<string, string>>((resolve, reject) => {
        const stream = m.client.serviceLogs({ service: "chatty", localOnly }) as grpc.ClientReadableStream<wire.LogChunk>;
        const out = new Map<string, string>();
        stream.on("data", (c: wire.LogChunk) => {
          const text = c.error ? `error: ${c.error}` : Buffer.from(c.data).toString().split(/(?<=\n)/).filter(Boolean).map((l) => parseTaskLogLine(l).text).join("");
          out.set(c.taskId, (out.get(c.taskId) ?? "") + text);
        });
        stream.on("end", () => resolve(out));
        stream.on("error", reject);
      });
    const byNode = (got: Map<string, string>) => tasks.map((t) => got.get(t.id)).sort();
    for (const m of [m1, m2]) expect(byNode(await logsThrough(m, false))).toEqual(["hello from n1", "hello from n2"]);
    // asked only for its own sessions (what a manager asks of another), m1 says n2 is not its
    const own = byNode(await logsThrough(m1, true));
    expect(own[1]).toBe("hello from n1");
    expect(own[0]).toMatch(/^error: node n2 is not connected/);
  });

  it("refuses to remove a running manager (stop it first, or --force), and removes a stopped one", async () => {
    await startOne("m1");
    const m2 = await startOne("m2");
    const m3 = await startOne("m3");
    await waitFor("m2 to list m3, reachable", async () => (await call(m2.client, "listManagers", {})).managers.some((m) => m.hostname === "m3" && m.reachable), 5000);
    const refused = await failure(call(m2.client, "removeNode", { node: "m3", force: false }));
    expect(refused.code).toBe("FAILED_PRECONDITION");
    expect(refused.details).toMatch(/stop it first.*--force/);
    await m3.stop();
    await waitFor(
      "m3's removal to be accepted",
      async () => {
        try {
          await call(m2.client, "removeNode", { node: "m3", force: false });
          return true;
        } catch {
          return false;
        }
      },
      5000,
      100,
    );
    expect([...(await ids()).keys()].sort()).toEqual(["m1", "m2"]);
  }, 40_000);

  it("without etcd's quorum: reads answer from the cache marked stale, writes fail at once with UNAVAILABLE; all resumes with quorum", async () => {
    const m1 = await startOne("m1");
    await waitFor("a leader", async () => (await leaderName()) === "m1", 5000);
    await call(m1.client, "createService", { spec: serviceSpec("web", { replicated: { replicas: 0 } }) });
    const reasons: string[] = [];
    const watching = clusterClient(m1.running.addresses[0]!, credentialsFromDir(m1.running.adminTlsDir!), { interceptors: [staleReads((r) => reasons.push(r))] });
    try {
      etcd.member.signal("SIGSTOP");
      await waitFor(
        "a read marked stale",
        async () => {
          const services = (await call(watching, "listServices", {})).services;
          expect(services.map((s) => s.spec?.annotations?.name)).toEqual(["web"]);
          return reasons.length > 0;
        },
        8000,
        200,
      );
      expect(reasons[0]).toMatch(/quorum/);
      const startedAt = Date.now();
      const refused = await failure(call(m1.client, "createService", { spec: serviceSpec("api", { replicated: { replicas: 0 } }) }));
      expect(refused.code).toBe("UNAVAILABLE");
      expect(Date.now() - startedAt).toBeLessThan(1500);

      etcd.member.signal("SIGCONT");
      await waitFor(
        "writes to work again",
        async () => {
          try {
            await call(m1.client, "createService", { spec: serviceSpec("api", { replicated: { replicas: 0 } }) });
            return true;
          } catch {
            return false;
          }
        },
        15_000,
        200,
      );
      await waitFor("a leader again", async () => (await leaderName()) === "m1", 10_000);
      reasons.length = 0;
      await call(watching, "listServices", {});
      expect(reasons).toEqual([]);
    } finally {
      watching.close();
    }
  }, 60_000);

  it("a node that dies while etcd has no quorum is marked down once quorum is back, after the new term's restart grace", async () => {
    const m1 = await startOne("m1");
    await waitFor("m1 to lead", async () => (await leaderName()) === "m1", 5000);
    const n1 = await addAgent(m1, "n1");
    await addAgent(m1, "n2");
    await waitFor("n1 ready", async () => (await nodeState(m1, "n1")) === "ready", 5000);

    etcd.member.signal("SIGSTOP");
    n1.stop();
    await new Promise((r) => setTimeout(r, 4000)); // past the lease's TTL: the leader stepped down, its loops stopped
    etcd.member.signal("SIGCONT");
    await waitFor("a leader again", async () => (await leaderName()) === "m1", 10_000);
    const termAt = Date.now();
    await waitFor("n1 down", async () => (await nodeState(m1, "n1")) === "down", restartGraceMs(HEARTBEAT_MS) + 5000, 50);
    expect(Date.now() - termAt).toBeGreaterThanOrEqual(restartGraceMs(HEARTBEAT_MS) - 1000);
    expect(await nodeState(m1, "n2")).toBe("ready");
  }, 60_000);
});

/** A LoadImage call to every node: the chunks, then (unless `finish` is false) the last; `answer` is its answer. */
function startLoad(client: ClusterServiceClient, chunks: Buffer[], finish = true) {
  let stream!: grpc.ClientWritableStream<wire.LoadImageChunk>;
  const answer = new Promise<wire.LoadImageResponse>((resolve, reject) => {
    stream = client.loadImage((err, res) => (err ? reject(err) : resolve(res!)));
  });
  stream.write({ nodes: [], data: Buffer.alloc(0) });
  for (const data of chunks) stream.write({ data });
  if (finish) stream.end({ data: Buffer.alloc(0), last: true });
  return { stream, answer };
}
