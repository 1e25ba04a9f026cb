import { describe, expect, it } from "vitest";
import { LB_SLOT_SPACE, type LbService, backendSlices, canonicalLbPlan, lbPlanChanges, lbPlanFor, slotSlices } from "./lb-plan.ts";
import { viewEndpoint, viewService } from "../test/view-fixtures.ts";
import { type NetworkView, type ViewEndpoint, type ViewService, emptyView } from "./network-view.ts";

const svc = (id: string, vips: Record<string, string>, endpointMode = "vip"): ViewService => viewService(id, `name-${id}`, vips, endpointMode);
const ep = (taskId: string, serviceId: string, networkId: string, addr: string, ready = true): ViewEndpoint =>
  viewEndpoint(taskId, serviceId, networkId, addr, ready);

function viewOf(services: ViewService[], endpoints: ViewEndpoint[]): NetworkView {
  const v = emptyView();
  for (const s of services) v.services.set(s.id, s);
  for (const e of endpoints) v.endpoints.set(e.key, e);
  return v;
}

describe("lbPlanFor", () => {
  const view = viewOf(
    [
      svc("web", { front: "10.0.1.2/24", back: "10.0.2.2/24" }),
      svc("db", { back: "10.0.2.9/24" }),
      svc("dns-rr", { front: "10.0.1.7/24" }, "dnsrr"),
      svc("other", { elsewhere: "10.0.9.2/24" }),
    ],
    [
      ep("w2", "web", "front", "10.0.1.10/24"),
      ep("w1", "web", "front", "10.0.1.9/24"),
      ep("w3", "web", "front", "10.0.1.11/24", false),
      ep("w1", "web", "back", "10.0.2.20/24"),
      ep("r1", "dns-rr", "front", "10.0.1.30/24"),
      ep("o1", "other", "elsewhere", "10.0.9.3/24"),
    ],
  );

  it("lists every vip-mode VIP on the sandbox's networks with its ready endpoints on that network", () => {
    expect(lbPlanFor(view, new Set(["front", "back"]))).toEqual({
      services: [
        {
          serviceId: "web",
          name: "name-web",
          vip: "10.0.1.2",
          scheduler: "random",
          backends: [
            { ip: "10.0.1.9", weight: 1 },
            { ip: "10.0.1.10", weight: 1 },
          ],
        },
        { serviceId: "web", name: "name-web", vip: "10.0.2.2", scheduler: "random", backends: [{ ip: "10.0.2.20", weight: 1 }] },
        // a service with no ready endpoint stays in the plan: its VIP must refuse, not hang
        { serviceId: "db", name: "name-db", vip: "10.0.2.9", scheduler: "random", backends: [] },
      ],
    });
  });

  it("leaves out networks the sandbox is not attached to", () => {
    const plan = lbPlanFor(view, new Set(["back"]));
    expect(plan.services.map((s) => s.vip)).toEqual(["10.0.2.2", "10.0.2.9"]);
    expect(lbPlanFor(view, new Set())).toEqual({ services: [] });
  });

  it("takes weights from the endpoints and the scheduler from the service", () => {
    const weighted = (w1: number, other: number, lbScheduler = "rr"): NetworkView => {
      const v = structuredClone(view);
      for (const e of v.endpoints.values()) e.weight = e.taskId === "w1" ? w1 : other;
      for (const s of v.services.values()) s.lbScheduler = lbScheduler;
      return v;
    };
    const plan = lbPlanFor(weighted(3, 0), new Set(["front"]));
    expect(plan.services[0]!.backends).toEqual([
      { ip: "10.0.1.9", weight: 3 },
      { ip: "10.0.1.10", weight: 0 },
    ]);
    expect(plan.services[0]!.scheduler).toBe("rr");
    expect(() => lbPlanFor(weighted(1.5, 1.5), new Set(["front"]))).toThrow(/weight 1.5/);
  });

  it("carries client-IP affinity with its timeout, and none as nothing", () => {
    const sticky = viewOf(
      [
        { ...svc("a", { n: "10.0.1.2/24" }), lbAffinity: "client-ip", lbAffinityTimeoutS: 60 },
        // off the wire, a service without affinity says "" (or "none") and 0
        { ...svc("b", { n: "10.0.1.3/24" }), lbAffinity: "", lbAffinityTimeoutS: 0 },
        { ...svc("c", { n: "10.0.1.4/24" }), lbAffinity: "none" },
        // a timeout a view should never carry: the default, not no affinity
        { ...svc("d", { n: "10.0.1.5/24" }), lbAffinity: "client-ip", lbAffinityTimeoutS: 0 },
      ],
      [ep("t1", "a", "n", "10.0.1.9/24")],
    );
    const plan = lbPlanFor(sticky, new Set(["n"]));
    expect(plan.services.map((s) => [s.serviceId, s.affinityTimeoutS])).toEqual([
      ["a", 60],
      ["b", undefined],
      ["c", undefined],
      ["d", 10800],
    ]);
    expect(plan.services[1]).not.toHaveProperty("affinityTimeoutS");
  });

  it("keeps one backend per address and one service per VIP", () => {
    const dup = viewOf(
      [svc("a", { n: "10.0.1.2/24" }), svc("b", { n: "10.0.1.2/24" })],
      [ep("t2", "a", "n", "10.0.1.5/24"), ep("t1", "a", "n", "10.0.1.5/24")],
    );
    const plan = lbPlanFor(dup, new Set(["n"]));
    expect(plan.services).toHaveLength(1);
    expect(plan.services[0]!.serviceId).toBe("a");
    expect(plan.services[0]!.backends).toEqual([{ ip: "10.0.1.5", weight: 1 }]);
  });

  it("is canonical whatever the order of the view's maps", () => {
    const reversed = viewOf([...view.services.values()].reverse(), [...view.endpoints.values()].reverse());
    expect(lbPlanFor(reversed, new Set(["front", "back"]))).toEqual(lbPlanFor(view, new Set(["front", "back"])));
    const plan = lbPlanFor(view, new Set(["front", "back"]));
    expect(canonicalLbPlan({ services: [...plan.services].reverse() })).toEqual(plan);
  });
});

describe("slotSlices", () => {
  const sizes = (weights: number[], space?: number) => slotSlices(weights, space).map((s) => (s ? s.hi - s.lo + 1 : 0));

  it("splits the space evenly for equal weights", () => {
    expect(slotSlices([1, 1, 1])).toEqual([
      { lo: 0, hi: 21844 },
      { lo: 21845, hi: 43689 },
      { lo: 43690, hi: 65535 },
    ]);
  });

  it("is proportional to the weights", () => {
    expect(sizes([1, 3])).toEqual([16384, 49152]);
    expect(sizes([2, 2])).toEqual([32768, 32768]);
  });

  it("gives weight 0 no slice and every positive weight at least one slot", () => {
    expect(slotSlices([0, 1, 0])).toEqual([undefined, { lo: 0, hi: 65535 }, undefined]);
    expect(sizes([1, 65535])).toEqual([1, 65535]);
    expect(slotSlices([0, 0])).toEqual([undefined, undefined]);
    expect(slotSlices([])).toEqual([]);
  });

  it("covers the whole space exactly, contiguously, for many weight mixes", () => {
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    for (let i = 0; i < 200; i++) {
      const weights = Array.from({ length: 1 + rnd(40) }, () => (rnd(4) === 0 ? 0 : 1 + rnd(1000)));
      const slices = slotSlices(weights).filter((s) => s !== undefined);
      if (weights.every((w) => w === 0)) {
        expect(slices).toEqual([]);
        continue;
      }
      expect(slices[0]!.lo).toBe(0);
      expect(slices[slices.length - 1]!.hi).toBe(LB_SLOT_SPACE - 1);
      for (let j = 1; j < slices.length; j++) expect(slices[j]!.lo).toBe(slices[j - 1]!.hi + 1);
      for (const s of slices) expect(s.hi).toBeGreaterThanOrEqual(s.lo);
      // each share within one slot per backend of its exact proportion
      const total = weights.reduce((a, b) => a + b, 0);
      const positive = weights.filter((w) => w > 0);
      slices.forEach((s, j) => {
        expect(Math.abs(s.hi - s.lo + 1 - (positive[j]! * LB_SLOT_SPACE) / total)).toBeLessThanOrEqual(positive.length + 1);
      });
    }
  });

  it("is deterministic and refuses what cannot be split", () => {
    expect(slotSlices([5, 7, 11])).toEqual(slotSlices([5, 7, 11]));
    expect(() => slotSlices([1, 1, 1], 2)).toThrow(/do not fit/);
    expect(() => slotSlices([-1])).toThrow(/non-negative/);
  });

  it("pairs backends with their slices, dropping drained ones", () => {
    expect(
      backendSlices([
        { ip: "10.0.0.5", weight: 1 },
        { ip: "10.0.0.6", weight: 0 },
        { ip: "10.0.0.7", weight: 3 },
      ]),
    ).toEqual([
      { ip: "10.0.0.5", weight: 1, lo: 0, hi: 16383 },
      { ip: "10.0.0.7", weight: 3, lo: 16384, hi: 65535 },
    ]);
  });
});

describe("lbPlanChanges", () => {
  const lb = (vip: string, ips: string[], scheduler: LbService["scheduler"] = "random"): LbService => ({
    serviceId: `s-${vip}`,
    name: vip,
    vip,
    scheduler,
    backends: ips.map((ip) => ({ ip, weight: 1 })),
  });

  it("names the VIPs that are new, gone or changed, and passes over the same ones", () => {
    const kept = lb("10.0.0.2", ["10.0.1.1"]);
    const prev = { services: [kept, lb("10.0.0.3", ["10.0.1.2"]), lb("10.0.0.9", ["10.0.1.3"])] };
    const next = { services: [kept, lb("10.0.0.3", ["10.0.1.2"], "rr"), lb("10.0.0.10", ["10.0.1.4"])] };
    expect(lbPlanChanges(prev, next)).toEqual([
      { before: prev.services[1], after: next.services[1] },
      { before: prev.services[2] },
      { after: next.services[2] },
    ]);
    // equal values in other objects: nothing to program
    expect(lbPlanChanges(prev, structuredClone(prev))).toEqual([]);
  });
});
