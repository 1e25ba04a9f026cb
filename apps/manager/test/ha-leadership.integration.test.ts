// Leader election on a real etcd: three contenders in this process, each with
// its own client and lease, as three managers would have.

import { waitFor } from "@vipmesh/testing";
import type { Etcd3 } from "@vipmesh/etcd";
import { afterAll, afterEach, beforeAll, expect, it } from "vitest";
import { LEADER_KEY, Leadership } from "../src/ha/leadership.ts";
import { LOST_AFTER_MS, ManagerLease, RENEW_EVERY_MS } from "../src/ha/manager-lease.ts";
import { etcdDescribe, startTestEtcd, type TestEtcd } from "@vipmesh/testing/etcd";

interface Contender {
  id: string;
  client: Etcd3;
  lease: ManagerLease;
  leadership: Leadership;
  /** When it stepped down, ms. */
  steppedDownAt?: number;
}

etcdDescribe("leadership (etcd)", () => {
  let etcd: TestEtcd;
  let contenders: Contender[] = [];
  /** Every sample where more than one contender believed it led. */
  let overlaps: string[][] = [];
  let sampler: NodeJS.Timeout | undefined;

  beforeAll(async () => {
    etcd = await startTestEtcd();
  }, 60_000);
  afterAll(async () => {
    await etcd?.stop();
  });
  afterEach(async () => {
    clearInterval(sampler);
    for (const c of contenders) {
      c.leadership.stop();
      await c.lease.stop();
    }
    contenders = [];
    etcd.member.signal("SIGCONT");
    await etcd.client().delete().prefix("/vipmesh/ha/");
  });

  async function contend(ids: string[]): Promise<Contender[]> {
    for (const id of ids) {
      const client = etcd.client();
      const lease = new ManagerLease(client);
      const c: Contender = { id, client, lease, leadership: new Leadership(client, lease, id) };
      c.leadership.onChange(() => {
        if (!c.leadership.isLeader()) c.steppedDownAt = Date.now();
      });
      contenders.push(c);
      await c.leadership.start();
      lease.start();
    }
    overlaps = [];
    sampler = setInterval(() => {
      const leading = contenders.filter((c) => c.leadership.isLeader()).map((c) => c.id);
      if (leading.length > 1) overlaps.push(leading);
    }, 10);
    return contenders;
  }

  const leaderOf = (cs: Contender[]) => cs.find((c) => c.leadership.isLeader());

  it("elects one leader that every contender knows", async () => {
    const cs = await contend(["m1", "m2", "m3"]);
    const leader = await waitFor("a leader", () => leaderOf(cs), 5000);
    await waitFor("every contender to know the leader", () => cs.every((c) => c.leadership.leaderId() === leader.id), 3000);
    expect(cs.filter((c) => c.leadership.isLeader())).toHaveLength(1);
    expect((await etcd.client().get(LEADER_KEY).string())).toBe(leader.id);
    expect(overlaps).toEqual([]);
  });

  it("elects another leader within ~4 s when the leader's client dies (its lease expires)", async () => {
    const cs = await contend(["m1", "m2", "m3"]);
    const first = await waitFor("a leader", () => leaderOf(cs), 5000);
    const killedAt = Date.now();
    first.client.close(); // as if the process died: nothing revokes the lease
    const next = await waitFor("another leader", () => cs.find((c) => c !== first && c.leadership.isLeader()), 6000, 10);
    const took = Date.now() - killedAt;
    expect(took).toBeLessThan(4500);
    // the old leader stepped down on its own (2 s after its last renewal, sent up to 1 s before the kill), before the new one took over
    expect(first.steppedDownAt).toBeDefined();
    expect(first.steppedDownAt! - killedAt).toBeLessThan(LOST_AFTER_MS + RENEW_EVERY_MS + 500);
    expect(first.steppedDownAt!).toBeLessThanOrEqual(killedAt + took);
    expect(overlaps).toEqual([]);
    await waitFor("the survivors to agree", () => cs.filter((c) => c !== first).every((c) => c.leadership.leaderId() === next.id), 3000);
  }, 20_000);

  it("hands over at once when the leader stops cleanly (its lease is revoked)", async () => {
    const cs = await contend(["m1", "m2"]);
    const first = await waitFor("a leader", () => leaderOf(cs), 5000);
    const stoppedAt = Date.now();
    first.leadership.stop();
    await first.lease.stop();
    await waitFor("the other to lead", () => cs.find((c) => c !== first && c.leadership.isLeader()), 3000, 10);
    expect(Date.now() - stoppedAt).toBeLessThan(1500);
    expect(overlaps).toEqual([]);
  });

  it("steps down within 2 s when etcd stops answering, and a leader is elected once it is back", async () => {
    const cs = await contend(["m1", "m2"]);
    await waitFor("a leader", () => leaderOf(cs), 5000);
    const stoppedAt = Date.now();
    etcd.member.signal("SIGSTOP");
    await waitFor("no leader", () => !leaderOf(cs), 4000, 10);
    const took = Date.now() - stoppedAt;
    expect(took).toBeGreaterThan(LOST_AFTER_MS - 1100); // the last renewal may have been up to 1 s before
    expect(took).toBeLessThan(LOST_AFTER_MS + 300);
    await new Promise((r) => setTimeout(r, 1000));
    expect(leaderOf(cs)).toBeUndefined();
    etcd.member.signal("SIGCONT");
    await waitFor("a leader again", () => leaderOf(cs), 10_000);
    expect(overlaps).toEqual([]);
  }, 30_000);
});
