// Agents and the CLI with two managers sharing one etcd (started in this
// process as `vipmesh manager --store etcd` starts them): an agent given one
// manager learns the other from the cluster and moves there when its own
// stops; the CLI given both (--host A,B) goes on to the one that answers;
// node ls lists both managers, the leader marked, a stopped one unreachable.
// Needs etcd, no root.

import { MANAGERS_FILE, ManagerSession } from "@vipmesh/agent";
import { call, clusterClient, credentialsFromDir, NodeIdentity } from "@vipmesh/api";
import { type RunningManager, startManager, writeStoreKey } from "@vipmesh/manager";
import { ClusterCa } from "@vipmesh/pki/signing";
import { tempDir, waitFor } from "@vipmesh/testing";
import { etcdDescribe, startTestEtcd, type TestEtcd } from "@vipmesh/testing/etcd";
import { once } from "node:events";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { runCli as cli } from "./run-cli.ts";

/** The rows of `node ls` as [HOSTNAME, STATUS, MANAGER STATUS] (empty for an agent's node). */
const rows = (table: string) =>
  table
    .trim()
    .split("\n")
    .slice(1)
    .map((l) => l.split(/\s{2,}/))
    .map(([, hostname, state, , managerStatus]) => [hostname, state, /^(Leader|Reachable|Unreachable)$/.test(managerStatus ?? "") ? managerStatus : ""]);

etcdDescribe("two managers on etcd", () => {
  const dir = tempDir("vipmesh-cli-failover-");
  let etcd: TestEtcd | undefined;
  const managers = new Map<string, RunningManager>();
  let session: ManagerSession | undefined;

  beforeAll(async () => {
    etcd = await startTestEtcd();
    writeStoreKey(join(dir.path, "store.key"));
    await ClusterCa.create(join(dir.path, "ca"));
  }, 60_000);

  afterAll(async () => {
    session?.stop();
    for (const m of managers.values()) await m.stop();
    await etcd?.stop();
    dir.remove();
  }, 60_000);

  const start = async (name: string) => {
    const m = await startManager({
      dataDir: join(dir.path, name),
      hostname: name,
      listen: ["127.0.0.1:0"],
      heartbeatPeriodMs: 100,
      restartDelayMs: 50,
      store: { kind: "etcd", endpoints: [etcd!.endpoint], storeKeyFile: join(dir.path, "store.key"), caDir: join(dir.path, "ca") },
    });
    managers.set(name, m);
    return m;
  };

  it("an agent learns the other manager and moves there; the CLI goes on to the manager that answers", async () => {
    const m1 = await start("m1");
    const m2 = await start("m2");
    const [a1, a2] = [m1.addresses[0]!, m2.addresses[0]!];
    const tls = m1.adminTlsDir!;
    const admin = clusterClient(a1, credentialsFromDir(tls));
    const token = (await call(admin, "getJoinToken", { role: "worker" })).token;
    admin.close();

    // given m1 only, the agent is told of both
    const state = join(dir.path, "agent");
    mkdirSync(state);
    const identity = await NodeIdentity.obtain({ manager: [a1], token });
    session = new ManagerSession({ managers: [a1], credentials: { identity: identity.source }, nodeId: identity.nodeId, hostname: "node-1", advertiseAddr: "192.0.2.71", stateDir: state, log: () => {} });
    session.start();
    await once(session, "open");
    await waitFor("both managers' addresses kept", () => {
      const file = join(state, MANAGERS_FILE);
      return existsSync(file) && (JSON.parse(readFileSync(file, "utf8")) as { managers: string[] }).managers.length === 2;
    });
    expect(JSON.parse(readFileSync(join(state, MANAGERS_FILE), "utf8")).managers.sort()).toEqual([a1, a2].sort());

    // node ls through either: both managers, one the leader, and the agent's node
    const both = `${a1},${a2}`;
    const ls = await waitFor("node-1 ready", async () => {
      const r = await cli(["--host", both, "--tls-dir", tls, "node", "ls"]);
      return r.code === 0 && /node-1\s+Ready/.test(r.stdout) ? r.stdout : undefined;
    });
    const listed = rows(ls);
    expect(listed.filter(([h]) => h === "m1" || h === "m2").map(([, s]) => s)).toEqual(["Ready", "Ready"]);
    expect(listed.filter(([, , ms]) => ms === "Leader")).toHaveLength(1);
    expect(listed.filter(([, , ms]) => ms === "Reachable")).toHaveLength(1);

    // m1 stops: the agent moves to m2, which only the cluster told it of; the CLI skips m1
    const reopened = once(session, "open");
    await m1.stop();
    managers.delete("m1");
    await reopened;
    const created = await cli(["--host", both, "--tls-dir", tls, "network", "create", "after-failover"]);
    expect(created).toMatchObject({ code: 0, stderr: "" });
    const after = await waitFor("m2 leads, node-1 ready", async () => {
      const r = await cli(["--host", both, "--tls-dir", tls, "node", "ls"]);
      return r.code === 0 && /m2\s+Ready\s+Active\s+Leader/.test(r.stdout) && /node-1\s+Ready/.test(r.stdout) ? r.stdout : undefined;
    }, 15_000);
    // the stopped manager stays listed, unreachable
    expect(rows(after).find(([h]) => h === "m1")).toEqual(["m1", "Unknown", "Unreachable"]);
  }, 60_000);

  it("without etcd's quorum: a read warns it may be out of date, a write fails at once with the manager's reason", async () => {
    const m = managers.get("m2") ?? (await start("m2"));
    const host = ["--host", m.addresses[0]!, "--tls-dir", m.adminTlsDir!];
    expect(await cli([...host, "network", "ls"])).toMatchObject({ code: 0, stderr: "" });
    etcd!.member.signal("SIGSTOP");
    try {
      const read = await waitFor("a read marked stale", async () => {
        const r = await cli([...host, "network", "ls"]);
        return r.stderr !== "" ? r : undefined;
      }, 20_000);
      expect(read.code).toBe(0);
      expect(read.stderr).toMatch(/^warning: .+; this may be out of date\n$/);
      const started = Date.now();
      const write = await cli([...host, "network", "create", "no-quorum"]);
      expect(write.code).toBe(1);
      expect(write.stderr).toMatch(/^Error: .*(quorum|etcd)/);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      etcd!.member.signal("SIGCONT");
    }
  }, 60_000);
});
