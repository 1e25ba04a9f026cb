import type { LbPlan } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { FakeNftables, type Packet, type Proto } from "./fake.ts";
import { renderDelta, renderRuleset } from "./render.ts";
import { goldenPlans, svc } from "./testdata/plans.ts";

const loaded = (plan: LbPlan): FakeNftables => {
  const nft = new FakeNftables();
  nft.apply(renderRuleset(plan));
  return nft;
};

const client = "10.0.1.100";
const pkt = (daddr: string, dport = 80, proto: Proto = "tcp"): Packet => ({ saddr: client, daddr, dport, proto });

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

  it("dumps a canonical text", () => {
    expect(loaded(goldenPlans["two-services-one-without-backends"]!).dump()).toBe(
      `table ip vipmesh
map be { typeof ip daddr . numgen random mod 65536 : ip daddr; flags interval; }
  10.0.1.2 . 0-32767 : 10.0.1.5
  10.0.1.2 . 32768-65535 : 10.0.1.6
map rr_vips { type ipv4_addr : verdict; }
set vips_without_backends { type ipv4_addr; }
  10.0.1.3
chain filter_forward { type filter hook forward priority 0; }
  ip daddr @vips_without_backends meta l4proto tcp reject with tcp reset
  ip daddr @vips_without_backends reject with icmp type port-unreachable
chain filter_output { type filter hook output priority 0; }
  ip daddr @vips_without_backends meta l4proto tcp reject with tcp reset
  ip daddr @vips_without_backends reject with icmp type port-unreachable
chain nat_output { type nat hook output priority -100; }
  ip daddr vmap @rr_vips
  dnat to ip daddr . numgen random mod 65536 map @be
chain nat_prerouting { type nat hook prerouting priority -100; }
  ip daddr vmap @rr_vips
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

  it("converges through a long run of random endpoint, weight and scheduler changes", () => {
    let seed = 42;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
    const randomPlan = (): LbPlan => {
      const services = [];
      for (let i = 0; i < 12; i++) {
        if (rnd(4) === 0) continue;
        const backends: [string, number][] = [];
        for (let j = 0; j < 6; j++) if (rnd(2) === 0) backends.push([`10.0.${i}.${10 + j}`, rnd(5) === 0 ? 0 : 1 + rnd(4)]);
        services.push(svc(`svc-${i}`, `10.0.100.${i + 2}`, backends, rnd(4) === 0 ? "rr" : "random"));
      }
      return { services };
    };
    let prev = randomPlan();
    const nft = loaded(prev);
    for (let step = 0; step < 300; step++) {
      const next = randomPlan();
      nft.apply(renderDelta(prev, next));
      expect(nft.dump()).toBe(loaded(next).dump());
      prev = next;
    }
  });
});
