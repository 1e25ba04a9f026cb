import type { LbPlan } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { ipvsChanges, ipvsStateFor, leavingDests, parseIpvsConnections, parseIpvsSave } from "./plan.ts";

const plan: LbPlan = {
  services: [
    { serviceId: "web", name: "web", vip: "10.0.1.2", fwmark: 257, scheduler: "random", backends: [{ ip: "10.0.1.10", weight: 1 }, { ip: "10.0.1.9", weight: 1 }] },
    { serviceId: "api", name: "api", vip: "10.0.1.3", fwmark: 256, scheduler: "rr", affinityTimeoutS: 600, backends: [{ ip: "10.0.1.20", weight: 1 }, { ip: "10.0.1.21", weight: 3 }] },
    { serviceId: "old", name: "old", vip: "10.0.1.4", scheduler: "rr", backends: [] },
  ],
};

// what `ipvsadm -Sn` prints for that plan once applied (a canonical dump)
const SAVED = `-A -f 256 -s wrr -p 600
-a -f 256 -r 10.0.1.20:0 -m -w 1
-a -f 256 -r 10.0.1.21:0 -m -w 3
-A -f 257 -s rr
-a -f 257 -r 10.0.1.9:0 -m -w 1
-a -f 257 -r 10.0.1.10:0 -m -w 1
`;

const LISTED = `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
FWM  256 wrr persistent 600
  -> 10.0.1.20:0                  Masq    1      2          1
  -> 10.0.1.21:0                  Masq    3      0          0
FWM  257 rr
  -> 10.0.1.9:0                   Masq    1      0          4
  -> 10.0.1.10:0                  Masq    1      0          0
`;

const none = new Map<string, number>();
const never = () => false;

describe("the IPVS plan", () => {
  it("is a virtual service per marked VIP, round-robin (weighted when weights differ), persistence for affinity", () => {
    expect(ipvsStateFor(plan)).toEqual(parseIpvsSave(SAVED));
    expect(ipvsStateFor(plan).services.map((s) => [s.fwmark, s.scheduler, s.persistentS])).toEqual([
      [256, "wrr", 600],
      [257, "rr", undefined],
    ]);
  });

  it("reads established connections per real server from ipvsadm -Ln (closing ones do not hold a drain)", () => {
    expect(parseIpvsConnections(LISTED)).toEqual(new Map([["256 10.0.1.20", 2], ["256 10.0.1.21", 0], ["257 10.0.1.9", 0], ["257 10.0.1.10", 0]]));
  });
});

describe("ipvsChanges", () => {
  const empty = { services: [] };

  it("builds everything from nothing in one batch, and writes nothing when the kernel already has it (a restarted agent)", () => {
    expect(ipvsChanges(empty, ipvsStateFor(plan), none, never).commands).toBe(
      ["-A -f 256 -s wrr -p 600", "-a -f 256 -r 10.0.1.20:0 -m -w 1", "-a -f 256 -r 10.0.1.21:0 -m -w 3", "-A -f 257 -s rr", "-a -f 257 -r 10.0.1.9:0 -m -w 1", "-a -f 257 -r 10.0.1.10:0 -m -w 1", ""].join("\n"),
    );
    expect(ipvsChanges(parseIpvsSave(SAVED), ipvsStateFor(plan), none, never)).toEqual({ commands: "", draining: [], after: parseIpvsSave(SAVED) });
  });

  it("changes a weight and a scheduler in place, and deletes a virtual service that left at once", () => {
    const next: LbPlan = {
      services: [
        { ...plan.services[0]!, backends: [{ ip: "10.0.1.10", weight: 2 }, { ip: "10.0.1.9", weight: 1 }] },
        { ...plan.services[2]! },
      ],
    };
    expect(ipvsChanges(parseIpvsSave(SAVED), ipvsStateFor(next), none, never).commands).toBe(
      ["-D -f 256", "-E -f 257 -s wrr", "-e -f 257 -r 10.0.1.10:0 -m -w 2", ""].join("\n"),
    );
  });

  it("drains a real server that left: weight 0 while it has connections, deleted once it has none or its time is up", () => {
    const without21: LbPlan = { services: [{ ...plan.services[1]!, backends: [{ ip: "10.0.1.21", weight: 3 }] }, plan.services[0]!] };
    const connections = parseIpvsConnections(LISTED);
    const first = ipvsChanges(parseIpvsSave(SAVED), ipvsStateFor(without21), connections, never);
    expect(first.commands).toContain("-e -f 256 -r 10.0.1.20:0 -m -w 0\n");
    expect(first.commands).not.toContain("-d ");
    expect(first.draining).toEqual(["256 10.0.1.20"]);

    const quiesced = parseIpvsSave(SAVED.replace("-r 10.0.1.20:0 -m -w 1", "-r 10.0.1.20:0 -m -w 0"));
    expect(first.after).toEqual(parseIpvsSave(SAVED.replace("-s wrr", "-s rr").replace("-r 10.0.1.20:0 -m -w 1", "-r 10.0.1.20:0 -m -w 0")));
    expect(leavingDests(quiesced, ipvsStateFor(without21))).toEqual(["256 10.0.1.20"]);
    expect(ipvsChanges(quiesced, ipvsStateFor(without21), connections, never)).toEqual({ commands: "-E -f 256 -s rr -p 600\n", draining: ["256 10.0.1.20"], after: first.after });
    const deleted = ipvsChanges(quiesced, ipvsStateFor(without21), none, never);
    expect(deleted.commands).toContain("-d -f 256 -r 10.0.1.20:0\n");
    expect(deleted.after).toEqual(ipvsStateFor(without21));
    expect(leavingDests(deleted.after, ipvsStateFor(without21))).toEqual([]);
    expect(ipvsChanges(quiesced, ipvsStateFor(without21), connections, () => true).commands).toContain("-d -f 256 -r 10.0.1.20:0\n");
  });
});
