import { describe, expect, it } from "vitest";
import { dnsRecordsFor, isClusterDnsName, lookupDnsAddresses, lookupDnsPtr, reverseDnsName } from "./dns-records.ts";
import { viewEndpoint, viewService } from "../test/view-fixtures.ts";
import { type NetworkView, type ViewEndpoint, type ViewNetwork, emptyView } from "./network-view.ts";
import type { Task } from "./types.ts";

const net = (id: string, subnet: string, ingress = false): ViewNetwork => ({ id, name: id, subnet, gateway: "", vni: 4096, encrypted: false, ingress });

const svc = viewService;
const ep = (taskId: string, serviceId: string, networkId: string, addr: string, ready = true, nodeId = "node2"): ViewEndpoint =>
  viewEndpoint(taskId, serviceId, networkId, addr, ready, nodeId);

// 25 base-36 characters, like real task IDs
const T1 = "a".repeat(24) + "1";
const T2 = "a".repeat(24) + "2";
const T3 = "a".repeat(24) + "3";
const T4 = "a".repeat(24) + "4";
const T5 = "a".repeat(24) + "5";
const T6 = "a".repeat(24) + "6";

function view(): NetworkView {
  const v = emptyView();
  for (const n of [net("front", "10.0.1.0/24"), net("back", "10.0.2.0/24"), net("other", "10.0.9.0/24"), net("ingress", "10.255.0.0/16", true)]) {
    v.networks.set(n.id, n);
  }
  for (const s of [
    svc("s-web", "Web", { front: "10.0.1.2/24", back: "10.0.2.2/24", ingress: "10.255.0.2/16" }),
    svc("s-db", "db", { back: "10.0.2.9/24" }),
    svc("s-rr", "rr", {}, "dnsrr"),
    svc("s-hidden", "hidden", { other: "10.0.9.2/24" }),
  ]) {
    v.services.set(s.id, s);
  }
  for (const e of [
    ep(T1, "s-web", "front", "10.0.1.5/24"),
    ep(T2, "s-web", "front", "10.0.1.4/24", false),
    ep(T1, "s-web", "ingress", "10.255.0.5/16"),
    ep(T3, "s-rr", "front", "10.0.1.8/24"),
    ep(T4, "s-rr", "front", "10.0.1.7/24"),
    ep(T5, "s-rr", "front", "10.0.1.9/24", false),
    ep(T6, "s-hidden", "other", "10.0.9.5/24"),
  ]) {
    v.endpoints.set(e.key, e);
  }
  // T1 runs on this node: its slot is known
  v.tasks.set(T1, { id: T1, slot: 3 } as Task);
  return v;
}

const front = dnsRecordsFor(view(), new Set(["front", "ingress"]));
const addrs = (name: string, records = front) => lookupDnsAddresses(records, name)?.addrs;

describe("dnsRecordsFor", () => {
  it("answers a vip-mode service with its VIP on the asker's network only, not the ingress one", () => {
    expect(lookupDnsAddresses(front, "web")).toEqual({ addrs: ["10.0.1.2"], shuffle: false });
    const both = dnsRecordsFor(view(), new Set(["front", "back"]));
    expect(addrs("web", both)).toEqual(["10.0.1.2", "10.0.2.2"]);
  });

  it("is case-insensitive and tolerates a trailing dot", () => {
    expect(addrs("WEB.")).toEqual(["10.0.1.2"]);
    expect(addrs("Tasks.Web")).toEqual(["10.0.1.5"]);
  });

  it("answers tasks.<service> with ready task addresses only", () => {
    expect(lookupDnsAddresses(front, "tasks.web")).toEqual({ addrs: ["10.0.1.5"], shuffle: true });
    expect(addrs("tasks.rr")).toEqual(["10.0.1.7", "10.0.1.8"]);
  });

  it("answers a dnsrr service with its ready task addresses, to be shuffled, and no VIP", () => {
    expect(lookupDnsAddresses(front, "rr")).toEqual({ addrs: ["10.0.1.7", "10.0.1.8"], shuffle: true });
  });

  it("keeps services on other networks out (isolation)", () => {
    expect(lookupDnsAddresses(front, "hidden")).toBeUndefined();
    expect(lookupDnsAddresses(front, "tasks.hidden")).toBeUndefined();
    expect(lookupDnsAddresses(front, "db")).toBeUndefined();
    expect(lookupDnsPtr(front, reverseDnsName("10.0.9.5"))).toBeUndefined();
    expect(lookupDnsPtr(front, reverseDnsName("10.0.2.9"))).toBeUndefined();
    expect(addrs("db", dnsRecordsFor(view(), new Set(["back"])))).toEqual(["10.0.2.9"]);
  });

  it("answers task names: with the slot when known, the short form when not", () => {
    expect(addrs(`web.3.${T1}`)).toEqual(["10.0.1.5"]);
    expect(addrs(`web.4.${T1}`)).toBeUndefined();
    expect(addrs(`web.${T1}`)).toBeUndefined();
    expect(addrs(`db.3.${T1}`)).toBeUndefined();
    // remote, slot unknown: any middle label, or none
    expect(addrs(`rr.2.${T3}`)).toEqual(["10.0.1.8"]);
    expect(addrs(`rr.${T3}`)).toEqual(["10.0.1.8"]);
    // a task name names one task, ready or not
    expect(addrs(`rr.${T5}`)).toEqual(["10.0.1.9"]);
    expect(addrs(`hidden.${T6}`)).toBeUndefined();
  });

  it("names a global service's task by its node", () => {
    const v = view();
    v.tasks.set(T1, { id: T1, slot: 0 } as Task);
    expect(addrs(`web.node2.${T1}`, dnsRecordsFor(v, new Set(["front"])))).toEqual(["10.0.1.5"]);
  });

  it("has PTR records for VIPs and task addresses, and each forward-resolves", () => {
    expect(lookupDnsPtr(front, "2.1.0.10.in-addr.arpa.")).toBe("web");
    expect(lookupDnsPtr(front, reverseDnsName("10.0.1.5"))).toBe(`web.3.${T1}`);
    expect(lookupDnsPtr(front, reverseDnsName("10.0.1.8"))).toBe(`rr.${T3}`);
    for (const target of front.ptr.values()) expect(lookupDnsAddresses(front, target)).toBeDefined();
  });

  it("tells cluster names from the world's", () => {
    for (const n of ["nosuch", "tasks.nosuch", `x.1.${T6}`, `x.${T6}`, "99.1.0.10.in-addr.arpa"]) expect(isClusterDnsName(front, n)).toBe(true);
    for (const n of ["example.com", "www.example.com", "1.1.1.1.in-addr.arpa", "5.9.0.10.in-addr.arpa", ""]) expect(isClusterDnsName(front, n)).toBe(false);
  });
});

describe("aliases and Docker's names", () => {
  // a stack: demo_web (vip) with alias "web" on front and "www" on back; demo_rr (dnsrr) with alias "rr2" on front
  const W1 = "b".repeat(24) + "1";
  const W2 = "b".repeat(24) + "2";
  const R1 = "b".repeat(24) + "3";
  function stack(): NetworkView {
    const v = view();
    const web = {
      ...svc("s-demo-web", "demo_web", { front: "10.0.1.20/24", back: "10.0.2.20/24" }),
      aliases: [
        { networkId: "front", names: ["Web2", "demo_web"] },
        { networkId: "back", names: ["www", "web2"] },
      ],
    };
    const rr = { ...svc("s-demo-rr", "web.v2", {}, "dnsrr"), aliases: [{ networkId: "front", names: ["rr2"] }] };
    for (const s of [web, rr]) v.services.set(s.id, s);
    for (const e of [ep(W1, web.id, "front", "10.0.1.21/24"), ep(W2, web.id, "back", "10.0.2.21/24"), ep(R1, rr.id, "front", "10.0.1.23/24")]) v.endpoints.set(e.key, e);
    return v;
  }
  const onFront = dnsRecordsFor(stack(), new Set(["front"]));
  const onBack = dnsRecordsFor(stack(), new Set(["back"]));
  const onBoth = dnsRecordsFor(stack(), new Set(["front", "back"]));

  it("answers names with '_' and '.' as any other", () => {
    expect(lookupDnsAddresses(onFront, "demo_web")).toEqual({ addrs: ["10.0.1.20"], shuffle: false });
    expect(lookupDnsAddresses(onFront, "DEMO_WEB.")).toEqual({ addrs: ["10.0.1.20"], shuffle: false });
    expect(addrs("tasks.demo_web", onFront)).toEqual(["10.0.1.21"]);
    expect(lookupDnsAddresses(onFront, "web.v2")).toEqual({ addrs: ["10.0.1.23"], shuffle: true });
    expect(addrs("tasks.web.v2", onFront)).toEqual(["10.0.1.23"]);
    // a task of a dotted service: its PTR target forward-resolves
    expect(lookupDnsPtr(onFront, reverseDnsName("10.0.1.23"))).toBe(`web.v2.${R1}`);
    expect(addrs(`web.v2.${R1}`, onFront)).toEqual(["10.0.1.23"]);
    expect(addrs(`web.v2.7.${R1}`, onFront)).toEqual(["10.0.1.23"]);
    expect(addrs(`web.${R1}`, onFront)).toBeUndefined();
    expect(isClusterDnsName(onFront, `web.v2.7.${R1.replace("3", "9")}`)).toBe(true);
  });

  it("answers an alias as the service on the alias's network: its VIP there, tasks.<alias> its tasks there", () => {
    expect(lookupDnsAddresses(onFront, "web2")).toEqual({ addrs: ["10.0.1.20"], shuffle: false });
    expect(lookupDnsAddresses(onFront, "tasks.web2")).toEqual({ addrs: ["10.0.1.21"], shuffle: true });
    expect(addrs("web2", onBack)).toEqual(["10.0.2.20"]);
    expect(addrs("tasks.web2", onBack)).toEqual(["10.0.2.21"]);
    // on both networks: both VIPs, like the name
    expect(addrs("web2", onBoth)).toEqual(["10.0.1.20", "10.0.2.20"]);
    expect(addrs("demo_web", onBoth)).toEqual(["10.0.1.20", "10.0.2.20"]);
    // a dnsrr service's alias: its ready tasks there, shuffled
    expect(lookupDnsAddresses(onFront, "rr2")).toEqual({ addrs: ["10.0.1.23"], shuffle: true });
    expect(addrs("tasks.rr2", onFront)).toEqual(["10.0.1.23"]);
    // no PTR names an alias
    expect([...onBoth.ptr.values()].filter((n) => n.includes("web2") || n.includes("www"))).toEqual([]);
  });

  it("answers an alias only on its network", () => {
    expect(addrs("www", onFront)).toBeUndefined();
    expect(addrs("tasks.www", onFront)).toBeUndefined();
    expect(addrs("www", onBack)).toEqual(["10.0.2.20"]);
    expect(addrs("rr2", onBack)).toBeUndefined();
    expect(addrs("www", dnsRecordsFor(stack(), new Set(["other"])))).toBeUndefined();
  });

  it("gives a name to its service before any alias: an alias two services share is the first's by ID", () => {
    const v = stack();
    v.services.set("s-a", { ...svc("s-a", "a", { front: "10.0.1.30/24" }), aliases: [{ networkId: "front", names: ["web", "shared"] }] });
    v.services.set("s-b", { ...svc("s-b", "b", { front: "10.0.1.31/24" }), aliases: [{ networkId: "front", names: ["shared"] }] });
    const r = dnsRecordsFor(v, new Set(["front"]));
    expect(addrs("web", r)).toEqual(["10.0.1.2"]); // the service named web
    expect(addrs("shared", r)).toEqual(["10.0.1.30"]);
    expect(addrs("a", r)).toEqual(["10.0.1.30"]);
    expect(addrs("b", r)).toEqual(["10.0.1.31"]);
  });
});
