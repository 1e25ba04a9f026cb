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

// what `ipvsadm -Lnc` prints: a connection in its handshake and one established to .20, one
// closing to .9 and one in TIME_WAIT to .10, a UDP flow to .21, a persistence template
const LISTED = `IPVS connection entries
pro expire state       source             virtual            destination
TCP 00:59  SYN_RECV    10.0.1.5:40001     10.0.1.3:80        10.0.1.20:80
TCP 14:59  ESTABLISHED 10.0.1.5:40003     10.0.1.3:80        10.0.1.20:80
TCP 01:30  FIN_WAIT    10.0.1.5:40005     10.0.1.2:80        10.0.1.9:80
TCP 01:58  TIME_WAIT   10.0.1.5:40007     10.0.1.2:80        10.0.1.10:80
UDP 04:59  UDP         10.0.1.5:40009     10.0.1.3:53        10.0.1.21:53
IP  09:59  NONE        10.0.1.5:0         0.0.1.0:0          10.0.1.20:0
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

  it("counts, per real server, the connections that still need it: one in its handshake too, not TIME_WAIT, UDP or templates", () => {
    expect(parseIpvsConnections(LISTED)).toEqual(new Map([["10.0.1.20", 2], ["10.0.1.9", 1]]));
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

    // quiesced first even when idle: connections read while it had weight may miss one it was just given
    expect(ipvsChanges(parseIpvsSave(SAVED), ipvsStateFor(without21), none, never)).toMatchObject({ commands: expect.stringContaining("-e -f 256 -r 10.0.1.20:0 -m -w 0\n"), draining: ["256 10.0.1.20"] });
    // a connection still in its handshake holds the real server too (ActiveConn would say 0 and let it go)
    const handshake = parseIpvsConnections(LISTED.split("\n").filter((l) => !l.includes("ESTABLISHED")).join("\n"));
    expect(ipvsChanges(quiesced, ipvsStateFor(without21), handshake, never).draining).toEqual(["256 10.0.1.20"]);
    // only TIME_WAIT left: deleted at once
    const closed = parseIpvsConnections(LISTED.replace(/SYN_RECV|ESTABLISHED/g, "TIME_WAIT"));
    expect(ipvsChanges(quiesced, ipvsStateFor(without21), closed, never).commands).toContain("-d -f 256 -r 10.0.1.20:0\n");
  });
});
