import { describe, expect, it } from "vitest";
import { type DnsRecords, dnsRecordsFor } from "./dns-records.ts";
import { lbPlanFor } from "./lb-plan.ts";
import { type NetworkView, type ViewEndpoint, type ViewService, applyViewDelta, diffNetworkViews, emptyView } from "./network-view.ts";
import { SandboxDerivation } from "./sandbox-derivation.ts";
import { seededRandom } from "./seeded-random.ts";
import type { Task } from "./types.ts";

const NETS = ["a", "b", "ing"] as const;
const subnetOf = (net: string) => ({ a: "10.1.0.0/16", b: "10.2.0.0/16", ing: "10.255.0.0/16" })[net]!;
const ipOn = (net: string, host: number) => `${subnetOf(net).split(".").slice(0, 2).join(".")}.${host >> 8}.${host & 255}/16`;

function baseView(): NetworkView {
  const v = emptyView();
  for (const id of NETS) v.networks.set(id, { id, name: id, subnet: subnetOf(id), gateway: "", vni: 4096, encrypted: false, ingress: id === "ing" });
  return v;
}

/** Aliases on some of the networks, from a small pool (so services share them) that also holds services' names. */
function randomAliases(r: () => number): Pick<ViewService, "aliases"> {
  const pool = ["x0", "X1", "x.2", "svc-s1", "svc-s2"];
  const aliases = NETS.filter(() => r() < 0.5).map((networkId) => ({ networkId, names: pool.filter(() => r() < 0.3) }));
  return aliases.length > 0 ? { aliases } : {};
}

/** One random change to a view (in place); `collide` lets it give two services one VIP or name; `aliases`, aliases. */
function mutate(v: NetworkView, r: () => number, collide: boolean, aliases = false): void {
  const pick = <T>(xs: readonly T[]): T | undefined => xs[Math.floor(r() * xs.length)];
  const services = [...v.services.values()];
  const endpoints = [...v.endpoints.values()];
  const roll = r();
  if (roll < 0.15 || services.length === 0) {
    const id = `s${Math.floor(r() * 60)}`;
    const nets = NETS.filter(() => r() < 0.5);
    const vip = collide && services.length > 0 && r() < 0.3 ? services[0]!.virtualIps[0] : undefined;
    const svc: ViewService = {
      id,
      name: collide && r() < 0.2 && services.length > 0 ? services[0]!.name : `svc-${id}`,
      endpointMode: r() < 0.8 ? "vip" : "dnsrr",
      ports: [],
      virtualIps: vip ? [vip] : nets.map((n) => ({ networkId: n, addr: ipOn(n, 2 + Number(id.slice(1))) })),
      lbScheduler: r() < 0.2 ? "rr" : "",
      ...(r() < 0.2 ? { lbAffinity: "client-ip", lbAffinityTimeoutS: 60 } : {}),
      ...(aliases ? randomAliases(r) : {}),
    };
    v.services.set(id, svc);
  } else if (roll < 0.22) {
    v.services.delete(pick(services)!.id);
  } else if (roll < 0.3) {
    const s = pick(services)!;
    if (aliases && r() < 0.5) v.services.set(s.id, { ...s, aliases: undefined, ...randomAliases(r) });
    else v.services.set(s.id, { ...s, lbScheduler: s.lbScheduler === "rr" ? "" : "rr" });
  } else if (roll < 0.6 || endpoints.length === 0) {
    const s = pick(services)!;
    const net = pick(NETS)!;
    const task = `t${Math.floor(r() * 200)}`;
    const e: ViewEndpoint = {
      key: `${task}/${net}`,
      taskId: task,
      serviceId: s.id,
      networkId: net,
      addr: ipOn(net, 1000 + Math.floor(r() * 300)),
      mac: "",
      nodeId: r() < 0.5 ? "n1" : "n2",
      nodeAddr: "",
      ready: r() < 0.8,
      weight: Math.floor(r() * 3),
    };
    v.endpoints.set(e.key, e);
  } else if (roll < 0.75) {
    v.endpoints.delete(pick(endpoints)!.key);
  } else if (roll < 0.85) {
    const e = pick(endpoints)!;
    v.endpoints.set(e.key, { ...e, ready: !e.ready });
  } else if (roll < 0.95 && endpoints.length > 0) {
    // a task of this node: its slot names it in DNS
    const e = pick(endpoints)!;
    if (v.tasks.has(e.taskId)) v.tasks.delete(e.taskId);
    else v.tasks.set(e.taskId, { id: e.taskId, serviceId: e.serviceId, slot: Math.floor(r() * 4) } as Task);
  } else {
    const id = pick(NETS)!;
    const n = v.networks.get(id)!;
    v.networks.set(id, { ...n, name: `${n.name}x` });
  }
}

/** Every record of `want` is in `got`, and `got` has nothing `want` lacks among `keys`. */
function expectRecords(got: DnsRecords, want: ReturnType<typeof dnsRecordsFor>, keys: ReturnType<typeof dnsRecordsFor>[]): void {
  for (const kind of ["names", "tasks", "ptr"] as const) {
    const all = new Set(keys.flatMap((k) => [...k[kind].keys()]));
    for (const k of all) expect([kind, k, got[kind].get(k)]).toEqual([kind, k, want[kind].get(k)]);
  }
  expect(got.subnets).toEqual(want.subnets);
}

describe("SandboxDerivation", () => {
  for (const [seed, collide, aliases] of [
    [1, false, false],
    [2, false, false],
    [3, true, false],
    [4, false, true],
    [5, true, true],
  ] as const) {
    it(`follows ${collide ? "colliding " : ""}deltas${aliases ? " with aliases" : ""} exactly as deriving the whole view does, and leaves what it gave out as it was (seed ${seed})`, () => {
      const r = seededRandom(seed);
      const nets = new Set(["a", "ing"]);
      const live = baseView();
      for (let i = 0; i < 30; i++) mutate(live, r, collide, aliases);
      const d = new SandboxDerivation(live, nets);
      let before = dnsRecordsFor(live, nets);
      expect(d.plan).toEqual(lbPlanFor(live, nets));
      expectRecords(d.records, before, [before]);
      for (let step = 0; step < 600; step++) {
        const next = structuredClone(live);
        mutate(next, r, collide, aliases);
        const delta = diffNetworkViews(live, next);
        const given = { plan: d.plan, planCopy: structuredClone(d.plan), records: d.records, want: before };
        applyViewDelta(live, delta);
        d.apply(live, delta);

        expect(d.plan).toEqual(lbPlanFor(live, nets));
        const want = dnsRecordsFor(live, nets);
        expectRecords(d.records, want, [want, before]);
        // a sandbox still answering from the records it was given sees no change
        expectRecords(given.records, given.want, [want, given.want]);
        expect(given.plan).toEqual(given.planCopy);
        if (delta.services.length + delta.removedServices.length + delta.endpoints.length + delta.removedEndpoints.length === 0 && !collide) {
          expect(delta.tasks.length + delta.removedTasks.length + delta.networks.length > 0 || d.plan === given.plan).toBe(true);
        }
        before = want;
      }
    }, 30_000); // 600 steps, each derived whole for comparison: ~2 s alone, several times that on a loaded 2-core machine
  }
});
