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
