import type { LbPlan } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { FakeNftables, type Packet, type Proto, type Verdict } from "./fake.ts";
import { AFFINITY_SIZE, renderDelta, renderRuleset } from "./render.ts";
import { goldenPlans, svc } from "./testdata/plans.ts";

const loaded = (plan: LbPlan): FakeNftables => {
  const nft = new FakeNftables();
  nft.apply(renderRuleset(plan));
  return nft;
};

const client = "10.0.1.100";
const pkt = (daddr: string, dport = 80, proto: Proto = "tcp", saddr = client): Packet => ({ saddr, daddr, dport, proto });
const target = (v: Verdict): string => (v.verdict === "dnat" ? v.to.replace(/:\d+$/, "") : v.verdict);

/** Where new connections go over every value numgen random can draw. */
function spread(nft: FakeNftables, p: Packet): Map<string, number> {
  const counts = new Map<string, number>();
  for (let r = 0; r < 65536; r++) {
    const v = nft.walk(p, r);
    const k = v.verdict === "dnat" ? v.to : v.verdict;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return counts;
}

describe("packet walk through the rendered rules", () => {
  it("DNATs VIP:80 to one of the service's tasks at port 80", () => {
    const nft = loaded(goldenPlans["one-service-three-backends"]!);
    expect(nft.walk(pkt("10.0.1.2"), 0)).toEqual({ verdict: "dnat", to: "10.0.1.5:80" });
    expect(nft.walk(pkt("10.0.1.2"), 30000)).toEqual({ verdict: "dnat", to: "10.0.1.6:80" });
    expect(nft.walk(pkt("10.0.1.2", 8443), 65535)).toEqual({ verdict: "dnat", to: "10.0.1.7:8443" });
  });

  it("spreads new connections evenly over equal weights", () => {
    const nft = loaded(goldenPlans["one-service-three-backends"]!);
    expect(spread(nft, pkt("10.0.1.2"))).toEqual(
      new Map([
        ["10.0.1.5:80", 21845],
        ["10.0.1.6:80", 21845],
        ["10.0.1.7:80", 21846],
      ]),
    );
  });

  it("spreads new connections in proportion to the weights", () => {
    const nft = loaded(goldenPlans["weights-1-3"]!);
    expect(spread(nft, pkt("10.0.1.2"))).toEqual(
      new Map([
        ["10.0.1.5:80", 16384],
        ["10.0.1.6:80", 49152],
      ]),
    );
  });

  it("sends nothing new to a draining task, and refuses a service that only has draining tasks", () => {
    const nft = loaded(goldenPlans["weight-0-drains"]!);
    expect(spread(nft, pkt("10.0.1.2"))).toEqual(new Map([["10.0.1.6:80", 65536]]));
    expect(nft.walk(pkt("10.0.1.4"), 7)).toEqual({ verdict: "reject", with: "tcp reset" });
  });

  it("refuses a VIP with no ready task at once: TCP reset, ICMP port-unreachable otherwise", () => {
    const nft = loaded(goldenPlans["two-services-one-without-backends"]!);
    expect(nft.walk(pkt("10.0.1.3"), 0)).toEqual({ verdict: "reject", with: "tcp reset" });
    expect(nft.walk(pkt("10.0.1.3", 53, "udp"), 0)).toEqual({ verdict: "reject", with: "icmp port-unreachable" });
    expect(nft.walk(pkt("10.0.1.3", 80, "sctp"), 0)).toEqual({ verdict: "reject", with: "icmp port-unreachable" });
    expect(nft.walk(pkt("10.0.1.2"), 0)).toEqual({ verdict: "dnat", to: "10.0.1.5:80" });
  });

  it("leaves addresses that are no VIP alone", () => {
    const nft = loaded(goldenPlans["two-services-one-without-backends"]!);
    expect(nft.walk(pkt("10.0.1.5"), 0)).toEqual({ verdict: "accept" });
    expect(nft.walk(pkt("8.8.8.8", 53, "udp"), 0)).toEqual({ verdict: "accept" });
    expect(loaded(goldenPlans.empty!).walk(pkt("10.0.1.2"), 0)).toEqual({ verdict: "accept" });
    expect(new FakeNftables().walk(pkt("10.0.1.2"), 0)).toEqual({ verdict: "accept" });
  });

  it("DNATs UDP and SCTP too, port unchanged", () => {
    const nft = loaded(goldenPlans["one-service-three-backends"]!);
    expect(nft.walk(pkt("10.0.1.2", 53, "udp"), 100)).toEqual({ verdict: "dnat", to: "10.0.1.5:53" });
    expect(nft.walk(pkt("10.0.1.2", 3868, "sctp"), 65000)).toEqual({ verdict: "dnat", to: "10.0.1.7:3868" });
  });

  it("does the same for connections forwarded through the sandbox", () => {
    const nft = loaded(goldenPlans["two-services-one-without-backends"]!);
    expect(nft.walk(pkt("10.0.1.2"), 40000, "prerouting")).toEqual({ verdict: "dnat", to: "10.0.1.6:80" });
    expect(nft.walk(pkt("10.0.1.3"), 0, "prerouting")).toEqual({ verdict: "reject", with: "tcp reset" });
  });

  it("balances an rr VIP round-robin by weight, whatever numgen random draws", () => {
    const nft = loaded(goldenPlans["rr-and-random"]!);
    const picks = Array.from({ length: 6 }, () => nft.walk(pkt("10.0.1.3"), 0));
    expect(picks.map((v) => (v.verdict === "dnat" ? v.to : v.verdict))).toEqual([
      "10.0.1.8:80",
      "10.0.1.9:80",
      "10.0.1.9:80",
      "10.0.1.8:80",
      "10.0.1.9:80",
      "10.0.1.9:80",
    ]);
    expect(nft.walk(pkt("10.0.1.2"), 65535)).toEqual({ verdict: "dnat", to: "10.0.1.6:80" });
  });

  it("loads 2,002 elements in chunks and finds every VIP", () => {
    const plan = goldenPlans["chunked-2002-elements"]!;
    const nft = loaded(plan);
    for (const s of plan.services) {
      expect(nft.walk(pkt(s.vip), 0)).toEqual({ verdict: "dnat", to: `${s.backends[0]!.ip}:80` });
      expect(nft.walk(pkt(s.vip), 65535)).toEqual({ verdict: "dnat", to: `${s.backends[1]!.ip}:80` });
    }
  });
});

describe("client-IP affinity", () => {
  const sticky = goldenPlans["client-ip-affinity"]!;
  const [a, b] = ["10.0.1.100", "10.0.1.101"];
  const to = (nft: FakeNftables, saddr: string, random: number, vip = "10.0.1.2", origin: "output" | "prerouting" = "output") =>
    target(nft.walk(pkt(vip, 80, "tcp", saddr), random, origin));
  /** `plan` with the backends of `vip` replaced. */
  const withBackends = (plan: LbPlan, vip: string, backends: (string | [string, number])[]): LbPlan => ({
    services: plan.services.map((s) => (s.vip === vip ? svc(s.serviceId, s.vip, backends, s.scheduler, s.affinityTimeoutS) : s)),
  });

  it("keeps one client on one task, whatever numgen draws; another client is balanced on its own", () => {
    const nft = loaded(sticky);
    expect(to(nft, a, 0)).toBe("10.0.1.5");
    expect(spread(nft, pkt("10.0.1.2", 80, "tcp", a))).toEqual(new Map([["10.0.1.5:80", 65536]]));
    expect(to(nft, b, 65535)).toBe("10.0.1.7");
    for (const r of [0, 30000, 65535]) expect([to(nft, a, r), to(nft, b, r)]).toEqual(["10.0.1.5", "10.0.1.7"]);
    expect(nft.remembered(a, "10.0.1.2")).toBe("10.0.1.5");
    // UDP and forwarded connections alike
    expect(target(nft.walk(pkt("10.0.1.2", 53, "udp", a), 65535))).toBe("10.0.1.5");
    expect(to(nft, "192.0.2.7", 30000, "10.0.1.2", "prerouting")).toBe("10.0.1.6");
    expect(to(nft, "192.0.2.7", 0, "10.0.1.2", "prerouting")).toBe("10.0.1.6");
  });

  it("remembers nothing for a VIP without it", () => {
    const nft = loaded(sticky);
    expect(spread(nft, pkt("10.0.1.3"))).toEqual(new Map([["10.0.1.8:80", 65536]]));
    expect(nft.remembered(client, "10.0.1.3")).toBeUndefined();
    expect(nft.dump()).not.toContain("expires");
  });

  it("forgets a client the timeout after its last new connection, each of which refreshes it", () => {
    const nft = loaded(sticky);
    expect(to(nft, a, 0)).toBe("10.0.1.5");
    nft.advance(10_799);
    expect(to(nft, a, 65535)).toBe("10.0.1.5");
    nft.advance(10_799);
    expect(to(nft, a, 65535)).toBe("10.0.1.5");
    nft.advance(10_800);
    expect(nft.remembered(a, "10.0.1.2")).toBeUndefined();
    expect(to(nft, a, 65535)).toBe("10.0.1.7");
    expect(to(nft, a, 0)).toBe("10.0.1.7");
  });

  it("sends a client whose task left elsewhere, and keeps it there; the other clients keep theirs", () => {
    const nft = loaded(sticky);
    expect([to(nft, a, 0), to(nft, b, 30000)]).toEqual(["10.0.1.5", "10.0.1.6"]);
    const without5 = withBackends(sticky, "10.0.1.2", ["10.0.1.6", "10.0.1.7"]);
    nft.apply(renderDelta(sticky, without5));
    expect(to(nft, a, 65535)).toBe("10.0.1.7");
    // remembered anew: not re-drawn on every connection
    for (const r of [0, 30000, 65535]) expect([to(nft, a, r), to(nft, b, r)]).toEqual(["10.0.1.7", "10.0.1.6"]);
  });

  it("sends no new connection to a draining task, even a remembered client's", () => {
    const nft = loaded(sticky);
    expect(to(nft, a, 0)).toBe("10.0.1.5");
    const drained = withBackends(sticky, "10.0.1.2", [["10.0.1.5", 0], "10.0.1.6", "10.0.1.7"]);
    nft.apply(renderDelta(sticky, drained));
    expect(to(nft, a, 0)).toBe("10.0.1.6");
    expect(to(nft, a, 65535)).toBe("10.0.1.6");
  });

  it("keeps remembered clients where they are when tasks are added", () => {
    const nft = loaded(sticky);
    expect([to(nft, a, 0), to(nft, b, 65535)]).toEqual(["10.0.1.5", "10.0.1.7"]);
    const grown = withBackends(sticky, "10.0.1.2", ["10.0.1.5", "10.0.1.6", "10.0.1.7", "10.0.1.11", "10.0.1.12"]);
    nft.apply(renderDelta(sticky, grown));
    expect([to(nft, a, 65535), to(nft, b, 0)]).toEqual(["10.0.1.5", "10.0.1.7"]);
    expect(to(nft, "10.0.1.102", 65535)).toBe("10.0.1.12");
  });

  it("keeps a client on one task of an rr VIP, while new clients take turns", () => {
    const nft = loaded(goldenPlans["client-ip-affinity-rr-and-timeouts"]!);
    const rr = (saddr: string) => to(nft, saddr, 0, "10.0.1.2");
    expect([rr(a), rr(b), rr("10.0.1.102")]).toEqual(["10.0.1.8", "10.0.1.9", "10.0.1.9"]);
    expect([rr(a), rr(b), rr(a), rr("10.0.1.103")]).toEqual(["10.0.1.8", "10.0.1.9", "10.0.1.8", "10.0.1.8"]);
    nft.advance(61);
    expect(rr(a)).toBe("10.0.1.9");
  });

  it("keeps what it remembers through a delta, and forgets it on a full load (a new table)", () => {
    const nft = loaded(sticky);
    expect(to(nft, a, 0)).toBe("10.0.1.5");
    const other = withBackends(sticky, "10.0.1.3", ["10.0.1.8", "10.0.1.20"]);
    nft.apply(renderDelta(sticky, other));
    expect(nft.remembered(a, "10.0.1.2")).toBe("10.0.1.5");
    nft.apply(renderRuleset(other));
    expect(nft.remembered(a, "10.0.1.2")).toBeUndefined();
  });

  it("balances a client beyond the map's size without remembering it", () => {
    const nft = loaded(sticky);
    for (let i = 0; i < AFFINITY_SIZE; i++) to(nft, `10.${200 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`, 0);
    expect(to(nft, a, 65535)).toBe("10.0.1.7");
    expect(nft.remembered(a, "10.0.1.2")).toBeUndefined();
    expect(to(nft, a, 0)).toBe("10.0.1.5");
  });
});

describe("the fake as a kernel stand-in", () => {
  it("replaces the table whole on every full load", () => {
    const nft = loaded(goldenPlans["one-service-three-backends"]!);
    nft.apply(renderRuleset(goldenPlans["two-services-one-without-backends"]!));
    expect(nft.dump()).toBe(loaded(goldenPlans["two-services-one-without-backends"]!).dump());
  });

  it("applies a script all or nothing, failing where the kernel would", () => {
    const nft = loaded(goldenPlans["one-service-three-backends"]!);
    const before = nft.dump();
    // deleting what is not there: the delta was not made from the applied plan
    const stale = renderDelta(goldenPlans["weights-1-3"]!, goldenPlans["one-service-three-backends"]!);
    expect(() => nft.apply(stale)).toThrow(/No such file or directory/);
    expect(nft.dump()).toBe(before);
    // an interval over another's slots
    expect(() => nft.apply("add element ip vipmesh be { 10.0.1.2 . 100-200 : 10.0.1.9 }")).toThrow(/overlaps/);
    expect(() => nft.apply("add rule ip vipmesh nat_output accept")).toThrow(/does not know/);
    expect(nft.dump()).toBe(before);
  });

  it("refuses a walk that leaves nat with a rewritten header and no NAT (the connection would break)", () => {
    const nft = loaded(goldenPlans["client-ip-affinity"]!);
    expect(target(nft.walk(pkt("10.0.1.2"), 0))).toBe("10.0.1.5");
    // a chain that recalls and stops there: the header names 10.0.1.5, conntrack the VIP
    nft.apply(
      [
        "add chain ip vipmesh half",
        "add rule ip vipmesh half ip daddr set ip saddr . ip daddr map @affinity",
        "delete element ip vipmesh vip_chains { 10.0.1.2 }",
        "add element ip vipmesh vip_chains { 10.0.1.2 : goto half }",
      ].join("\n"),
    );
    expect(() => nft.walk(pkt("10.0.1.2"), 0)).toThrow(/rewrote the header to 10.0.1.5 but set up no NAT/);
  });

  it("dumps a canonical text", () => {
    expect(loaded(goldenPlans["two-services-one-without-backends"]!).dump()).toBe(
      `table ip vipmesh
map affinity { type ipv4_addr . ipv4_addr : ipv4_addr; size 65535; flags dynamic, timeout; }
set affinity_backends { type ipv4_addr . ipv4_addr; }
map be { typeof ip daddr . numgen random mod 65536 : ip daddr; flags interval; }
  10.0.1.2 . 0-32767 : 10.0.1.5
  10.0.1.2 . 32768-65535 : 10.0.1.6
map vip_chains { type ipv4_addr : verdict; }
set vips_without_backends { type ipv4_addr; }
  10.0.1.3
chain filter_forward { type filter hook forward priority 0; }
  ip daddr @vips_without_backends meta l4proto tcp reject with tcp reset
  ip daddr @vips_without_backends reject with icmp type port-unreachable
chain filter_output { type filter hook output priority 0; }
  ip daddr @vips_without_backends meta l4proto tcp reject with tcp reset
  ip daddr @vips_without_backends reject with icmp type port-unreachable
chain nat_output { type nat hook output priority -100; }
  ip daddr vmap @vip_chains
  dnat to ip daddr . numgen random mod 65536 map @be
chain nat_prerouting { type nat hook prerouting priority -100; }
  ip daddr vmap @vip_chains
  dnat to ip daddr . numgen random mod 65536 map @be
`,
    );
  });
});

describe("renderDelta against the fake", () => {
  /** A delta applied on top of prev's full load gives exactly next's full load. */
  function expectDeltaConverges(prev: LbPlan, next: LbPlan): void {
    const nft = loaded(prev);
    nft.apply(renderDelta(prev, next));
    expect(nft.dump()).toBe(loaded(next).dump());
  }

  it("converges between every pair of golden plans", () => {
    const plans = Object.values(goldenPlans);
    for (const a of plans) for (const b of plans) expectDeltaConverges(a, b);
  });

  it("converges through a long run of random endpoint, weight, scheduler and affinity changes", () => {
    const randomPlan = randomPlans(42);
    let prev = randomPlan();
    const nft = loaded(prev);
    for (let step = 0; step < 300; step++) {
      const next = randomPlan();
      nft.apply(renderDelta(prev, next));
      expect(nft.dump()).toBe(loaded(next).dump());
      prev = next;
    }
  });

  it("through the same run, sends new connections only to live backends, and keeps each client where it was while it can", () => {
    const randomPlan = randomPlans(7);
    const clients = ["10.0.200.1", "10.0.200.2", "10.0.200.3"];
    /** Where each client's last connection to an affinity VIP went: "client VIP" → backend. */
    const last = new Map<string, string>();
    let prev = randomPlan();
    const nft = loaded(prev);
    let kept = 0;
    for (let step = 0; step < 300; step++) {
      const next = randomPlan();
      nft.apply(renderDelta(prev, next));
      for (const s of next.services) {
        const live = new Set(s.backends.filter((b) => b.weight > 0).map((b) => b.ip));
        for (const c of clients) {
          const to = target(nft.walk(pkt(s.vip, 80, "tcp", c), (step * 7919 + c.length * 104729) % 65536));
          if (live.size === 0) {
            expect(to).toBe("reject");
            continue;
          }
          expect(live.has(to), `step ${step}: ${c} → ${s.vip} went to ${to}, not a live backend`).toBe(true);
          if (s.affinityTimeoutS === undefined) continue;
          const was = last.get(`${c} ${s.vip}`);
          if (was !== undefined && live.has(was)) {
            expect(to, `step ${step}: ${c} → ${s.vip} left ${was}, still live`).toBe(was);
            kept++;
          }
          last.set(`${c} ${s.vip}`, to);
        }
      }
      prev = next;
    }
    expect(kept).toBeGreaterThan(100);
  });
});

/** Plans of up to 12 services with random backends, weights, schedulers and affinity; deterministic from `seed`. */
function randomPlans(seed: number): () => LbPlan {
  // glibc's LCG in exact 32-bit arithmetic (a float product loses bits and cycles), its high bits (the low ones cycle fast)
  const rnd = (n: number) => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0), (seed >>> 16) % n);
  return () => {
    const services = [];
    for (let i = 0; i < 12; i++) {
      if (rnd(4) === 0) continue;
      const backends: [string, number][] = [];
      for (let j = 0; j < 6; j++) if (rnd(2) === 0) backends.push([`10.0.${i}.${10 + j}`, rnd(5) === 0 ? 0 : 1 + rnd(4)]);
      const affinity = rnd(3) === 0 ? [60, 600, 10800][rnd(3)] : undefined;
      services.push(svc(`svc-${i}`, `10.0.100.${i + 2}`, backends, rnd(4) === 0 ? "rr" : "random", affinity));
    }
    return { services };
  };
}
