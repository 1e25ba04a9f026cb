import { describe, expect, it } from "vitest";
import { BENCHES } from "./benches.ts";

const ha = BENCHES.find((b) => b.name === "ha")!;
const stats = (p50Ms: number) => ({ n: 20, p50Ms, p99Ms: p50Ms * 2, maxMs: p50Ms * 3 });
const round = (setup: string, agents: number, o: { rate: number; p50: number; rss: number[]; failover?: object }) => ({
  setup,
  agents,
  managers: o.rss.length,
  services: agents * 3,
  replicas: 3,
  create: { servicesPerSecond: o.rate },
  scale: { toLastSessionMs: stats(o.p50) },
  memory: { managers: o.rss.map((rssMb) => ({ rssMb, heapMb: rssMb / 4 })) },
  ...(o.failover ? { failover: o.failover } : {}),
});
const failover = (firstWriteAcceptedMs: number | null, scaledMs?: number) => ({ killed: "m1", chosen: "the leader ListManagers reported", firstWriteAcceptedMs, refused: {}, newLeader: "m2", newLeaderMs: 4000, ...(scaledMs === undefined ? {} : { scaledMs }) });
const run = (etcdFailover: object) =>
  ha.summarize(
    () => ({
      target: { failoverMs: 5000 },
      rounds: [
        round("sqlite", 100, { rate: 100, p50: 10, rss: [200], failover: failover(1000, 1100) }),
        round("etcd", 100, { rate: 20, p50: 40, rss: [150, 180, 170], failover: etcdFailover }),
        round("sqlite", 1000, { rate: 50, p50: 40, rss: [400] }),
        round("etcd", 1000, { rate: 25, p50: 50, rss: [220, 230, 225] }),
      ],
    }),
    "default",
  );

describe("the HA bench's report", () => {
  it("puts etcd's figures beside SQLite's at each size, and the failover's beside a restart", () => {
    const r = run(failover(90, 4000));
    expect(r.figures.filter((f) => f.unit === "services/s").map((f) => [f.name, f.value, f.baseline?.value])).toEqual([
      ["create, 100 sessions, 300 services × 3", 20, 100],
      ["create, 1000 sessions, 3k services × 3", 25, 50],
    ]);
    expect(r.figures.find((f) => f.name.startsWith("scale → every session, 100 "))).toMatchObject({ value: 40, p99: 80, baseline: { value: 10, p99: 20 } });
    expect(r.figures.find((f) => f.name.startsWith("manager RSS (largest of 3), 1000"))).toMatchObject({ value: 230, baseline: { value: 400 } });
    expect(r.figures.filter((f) => f.unit === "s").map((f) => [f.value, f.baseline?.value])).toEqual([
      [0.09, 1],
      [4, 1.1],
    ]);
    expect(r.targets.map((t) => [t.issue, t.met])).toEqual([
      [23, true],
      [23, true],
    ]);
  });

  it("misses the targets when no write was accepted or no new leader acted, saying why", () => {
    const r = run(failover(null));
    expect(r.targets.map((t) => [t.figure, t.met])).toEqual([
      ["no write accepted", false],
      ["never within the benchmark's 30 s", false],
    ]);
    expect(r.targets[0]!.why).toContain("m2 reported leader after");
    const late = run(failover(300, 6500));
    expect(late.targets.map((t) => t.met)).toEqual([true, false]);
  });
});
