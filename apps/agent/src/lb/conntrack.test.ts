import type { LbPlan } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { lostBackends, parseUdpFlows, staleUdpFlows } from "./conntrack.ts";

// `conntrack -L -p udp` as conntrack-tools 1.4.7 prints it (the count goes to stderr)
const listing = `udp      17 29 src=10.0.0.9 dst=10.0.0.2 sport=37764 dport=53 [UNREPLIED] src=10.0.0.3 dst=10.0.0.9 sport=53 dport=37764 mark=0 use=1
udp      17 117 src=10.0.0.9 dst=10.0.0.2 sport=40573 dport=8080 src=10.0.0.4 dst=10.0.0.9 sport=8080 dport=40573 [ASSURED] mark=0 use=1
udp      17 25 src=10.0.0.9 dst=10.0.0.7 sport=5000 dport=5000 src=10.0.0.7 dst=10.0.0.9 sport=5000 dport=5000 mark=0 use=1
`;

const plan = (services: Record<string, string[]>): LbPlan => ({
  services: Object.entries(services).map(([vip, ips]) => ({
    serviceId: `s-${vip}`,
    name: `s-${vip}`,
    vip,
    scheduler: "random" as const,
    backends: ips.map((ip) => ({ ip, weight: 1 })),
  })),
});

describe("conntrack", () => {
  it("reads each UDP flow's original destination and reply source", () => {
    expect(parseUdpFlows(listing)).toEqual([
      { origDst: "10.0.0.2", replySrc: "10.0.0.3" },
      { origDst: "10.0.0.2", replySrc: "10.0.0.4" },
      { origDst: "10.0.0.7", replySrc: "10.0.0.7" },
    ]);
    expect(parseUdpFlows("")).toEqual([]);
  });

  it("names the flows to a VIP answered by a task that is no longer its backend, and only those", () => {
    const flows = parseUdpFlows(listing);
    expect(staleUdpFlows(flows, plan({ "10.0.0.2": ["10.0.0.3", "10.0.0.4"] }))).toEqual([]);
    expect(staleUdpFlows(flows, plan({ "10.0.0.2": ["10.0.0.4"] }))).toEqual([{ origDst: "10.0.0.2", replySrc: "10.0.0.3" }]);
    // no backend left: every balanced flow of the VIP goes
    expect(staleUdpFlows(flows, plan({ "10.0.0.2": [] }))).toHaveLength(2);
    // a flow that was not balanced (10.0.0.7 answered itself) is never touched, VIP or not
    expect(staleUdpFlows(flows, plan({ "10.0.0.7": ["10.0.0.8"] }))).toEqual([]);
  });

  it("flushes the flows of a VIP that went away, when the plan before is known", () => {
    const flows = parseUdpFlows(listing);
    const before = plan({ "10.0.0.2": ["10.0.0.3", "10.0.0.4"] });
    expect(staleUdpFlows(flows, plan({}))).toEqual([]);
    expect(staleUdpFlows(flows, plan({}), before)).toHaveLength(2);
  });

  it("says when a sync lost a backend", () => {
    const before = plan({ "10.0.0.2": ["10.0.0.3", "10.0.0.4"] });
    expect(lostBackends(before, plan({ "10.0.0.2": ["10.0.0.3", "10.0.0.4", "10.0.0.5"] }))).toBe(false);
    expect(lostBackends(before, plan({ "10.0.0.2": ["10.0.0.3"] }))).toBe(true);
    expect(lostBackends(before, plan({}))).toBe(true);
    expect(lostBackends(plan({}), before)).toBe(false);
  });
});
