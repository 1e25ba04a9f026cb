// The manager directory on a real etcd: every manager listed with its
// reachability (its lease) and the leader marked; a manager whose process
// dies turns unreachable once its lease expires, and reachable again when
// it comes back.

import type { Etcd3 } from "@vipmesh/etcd";
import { waitFor } from "@vipmesh/testing";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { EtcdDirectory } from "../src/ha/etcd-directory.ts";
import { Leadership } from "../src/ha/leadership.ts";
import { LEASE_TTL_S, ManagerLease } from "../src/ha/manager-lease.ts";
import { etcdDescribe, startTestEtcd, type TestEtcd } from "@vipmesh/testing/etcd";

interface Member {
  id: string;
  client: Etcd3;
  lease: ManagerLease;
  leadership: Leadership;
  directory: EtcdDirectory;
  stop(): Promise<void>;
}

etcdDescribe("manager directory (etcd)", () => {
  let etcd: TestEtcd;
  let members: Member[] = [];

  beforeAll(async () => {
    etcd = await startTestEtcd();
  }, 60_000);
  afterAll(async () => {
    await etcd?.stop();
  });
  afterEach(async () => {
    for (const m of members) await m.stop();
    members = [];
    await etcd.client().delete().prefix("/vipmesh/ha/");
  });

  async function join(id: string): Promise<Member> {
    const client = etcd.client();
    const lease = new ManagerLease(client);
    const leadership = new Leadership(client, lease, id);
    const self = { id, hostname: `host-${id}`, addr: `127.0.0.1:${4000 + members.length}`, dockerApi: [], createdAt: new Date().toISOString() };
    const directory = new EtcdDirectory(client, lease, leadership, () => self);
    await leadership.start();
    lease.start();
    await directory.start();
    const m: Member = {
      id,
      client,
      lease,
      leadership,
      directory,
      stop: async () => {
        directory.stop();
        leadership.stop();
        await lease.stop();
      },
    };
    members.push(m);
    return m;
  }

  const view = (m: Member) => m.directory.list().map((x) => `${x.hostname}:${x.reachable ? "reachable" : "unreachable"}${x.leader ? ":leader" : ""}`);

  it("lists every manager, reachable, the leader marked, and tells of changes", async () => {
    const a = await join("a");
    await waitFor("a to lead", () => a.leadership.isLeader(), 5000);
    let changes = 0;
    a.directory.onChange(() => changes++);
    const b = await join("b");
    await waitFor("b listed by a", () => view(a).join() === "host-a:reachable:leader,host-b:reachable", 3000);
    await waitFor("a listed by b", () => view(b).join() === "host-a:reachable:leader,host-b:reachable", 3000);
    expect(changes).toBeGreaterThan(0);
    expect(b.directory.self()).toMatchObject({ id: "b", reachable: true, leader: false });
  });

  it("shows a manager whose process died unreachable once its lease expires, and the new leader", async () => {
    const a = await join("a");
    await waitFor("a to lead", () => a.leadership.isLeader(), 5000);
    const b = await join("b");
    await waitFor("b listed", () => view(a).includes("host-b:reachable"), 3000);
    const diedAt = Date.now();
    a.client.close(); // as a killed process: nothing revokes its lease
    await waitFor("a unreachable, b leading", () => view(b).join() === "host-a:unreachable,host-b:reachable:leader", 8000, 20);
    expect(Date.now() - diedAt).toBeLessThan(LEASE_TTL_S * 1000 + 1500);
    // removable now that it is gone; its entry goes
    await b.directory.remove("a", false);
    await waitFor("a forgotten", () => view(b).join() === "host-b:reachable:leader", 3000);
  }, 20_000);

  it("refuses to remove a running manager unless forced", async () => {
    await join("a");
    const b = await join("b");
    await waitFor("a listed", () => view(b).some((x) => x.startsWith("host-a:reachable")), 3000);
    await expect(b.directory.remove("a", false)).rejects.toThrow(/host-a \(a\) is running: stop it first, or remove it with --force/);
    await expect(b.directory.remove("nobody", false)).rejects.toThrow(/not found/);
    await b.directory.remove("a", true);
    await waitFor("a unlisted", () => view(b).join() === "host-b:reachable" || view(b).join() === "host-b:reachable:leader", 3000);
  });
});
