import { describe, expect, it } from "vitest";
import { expectVipmeshError } from "../test/expect-error.ts";
import { DATAPLANES, DATAPLANE_CAPABILITIES, DEFAULT_DATAPLANE, checkDataplanesHonour, dataplaneOf, normalizeDataplane } from "./dataplanes.ts";
import { type Dataplane, type EndpointSpec, LB_SCHEDULER_NAMES, type Node } from "./types.ts";
import { LB_AFFINITIES } from "./validation.ts";

const node = (hostname: string, dataplane?: Dataplane): Node => ({
  id: `id-${hostname}`,
  version: 1,
  createdAt: "",
  updatedAt: "",
  spec: { labels: {}, availability: "active" },
  description: { hostname, ...(dataplane ? { dataplane } : {}) },
  status: { state: "ready", message: "", addr: "192.0.2.1" },
});

const endpoint = (o: Partial<EndpointSpec> = {}): EndpointSpec => ({
  mode: "vip",
  ports: [],
  lbScheduler: "",
  lbWeights: {},
  lbAffinity: "none",
  lbAffinityTimeoutS: 0,
  ...o,
});

describe("the dataplane table", () => {
  it("has every scheduler and affinity the spec takes honoured by some dataplane", () => {
    const caps = Object.values(DATAPLANE_CAPABILITIES);
    for (const s of LB_SCHEDULER_NAMES) expect(caps.some((c) => c.schedulers.includes(s)), s).toBe(true);
    for (const a of LB_AFFINITIES) expect(caps.some((c) => c.affinities.includes(a)), a).toBe(true);
    expect(Object.keys(DATAPLANE_CAPABILITIES).sort()).toEqual([...DATAPLANES].sort());
  });

  it("says what nftables honours: random and rr, client-IP affinity, weights", () => {
    expect(DEFAULT_DATAPLANE).toBe("nftables");
    expect(DATAPLANE_CAPABILITIES.nftables).toEqual({ schedulers: ["random", "rr"], affinities: ["none", "client-ip"], weights: true });
  });

  it("reads a registered dataplane: nothing said is nftables, an unknown one is refused", () => {
    expect(normalizeDataplane("")).toBe("nftables");
    expect(normalizeDataplane(undefined)).toBe("nftables");
    expect(normalizeDataplane("ipvs")).toBe("ipvs");
    expectVipmeshError(() => normalizeDataplane("ebpf"), "invalid_argument", '"ebpf"', "nftables, ipvs", "--dataplane nftables");
    expect(dataplaneOf(node("old"))).toBe("nftables");
    expect(dataplaneOf(node("new", "ipvs"))).toBe("ipvs");
  });
});

describe("checkDataplanesHonour", () => {
  const nft = [node("node-2", "nftables"), node("node-1", "nftables")];

  it("looks at no node when the spec asks nothing of the dataplanes (a create costs nothing per node)", () => {
    const untouchable: Iterable<Node> = {
      [Symbol.iterator]: () => {
        throw new Error("the nodes were read");
      },
    };
    expect(() => checkDataplanesHonour(endpoint(), untouchable)).not.toThrow();
    expect(() => checkDataplanesHonour(endpoint({ lbScheduler: "lc" }), untouchable, endpoint({ lbScheduler: "lc" }))).not.toThrow();
    expect(() => checkDataplanesHonour(endpoint({ lbScheduler: "lc" }), untouchable)).toThrow("the nodes were read");
  });

  it("accepts what every node's dataplane honours, and the defaults everywhere", () => {
    for (const spec of [
      endpoint(),
      endpoint({ lbScheduler: "rr", lbWeights: { "1": 3, "2": 0 } }),
      endpoint({ lbScheduler: "random", lbAffinity: "client-ip", lbAffinityTimeoutS: 60 }),
    ]) {
      expect(() => checkDataplanesHonour(spec, nft)).not.toThrow();
      expect(() => checkDataplanesHonour(spec, [])).not.toThrow();
    }
    expect(() => checkDataplanesHonour(endpoint(), [node("a", "ipvs"), ...nft])).not.toThrow();
    expect(() => checkDataplanesHonour(endpoint({ lbScheduler: "rr" }), [node("a", "ipvs"), ...nft])).not.toThrow();
  });

  it("refuses a scheduler a node cannot honour, naming the nodes, their dataplane, what it honours and what to use", () => {
    expectVipmeshError(
      () => checkDataplanesHonour(endpoint({ lbScheduler: "lc" }), nft),
      "invalid_argument",
      'lb scheduler "lc"',
      "nodes node-1, node-2 (dataplane nftables, which honours schedulers random, rr; affinity client-ip; weights)",
      "use random or rr, which every node honours",
    );
  });

  it("with no node registered, holds a spec to nftables", () => {
    expectVipmeshError(
      () => checkDataplanesHonour(endpoint({ lbScheduler: "lc" }), []),
      "invalid_argument",
      'lb scheduler "lc"',
      "dataplane nftables, which applies while no node has registered",
      "schedulers random, rr",
    );
  });

  it("names only the nodes that cannot, and what every node can", () => {
    const mixed = [node("vs-1", "ipvs"), ...nft, node("old")];
    const err = expectVipmeshError(() => checkDataplanesHonour(endpoint({ lbScheduler: "random" }), mixed), "invalid_argument", "node vs-1 (dataplane ipvs", "schedulers rr, wrr, lc, wlc");
    expect(err.message).not.toContain("node-1");
    expectVipmeshError(
      () => checkDataplanesHonour(endpoint({ lbScheduler: "lc" }), mixed),
      "invalid_argument",
      "nodes node-1, node-2, old (dataplane nftables",
      "use rr, which every node honours",
    );
  });

  it("keeps a long list of nodes short", () => {
    const many = Array.from({ length: 12 }, (_, i) => node(`n${String(i).padStart(2, "0")}`, "nftables"));
    expectVipmeshError(() => checkDataplanesHonour(endpoint({ lbScheduler: "sh" }), many), "invalid_argument", "nodes n00, n01, n02, n03, n04 and 7 more");
  });

  it("on an update, checks only settings that change", () => {
    const current = endpoint({ lbScheduler: "lc" });
    // stored while an ipvs-only cluster honoured it: an unrelated update is not refused
    expect(() => checkDataplanesHonour(endpoint({ lbScheduler: "lc", ports: [] }), nft, current)).not.toThrow();
    expectVipmeshError(() => checkDataplanesHonour(endpoint({ lbScheduler: "sh" }), nft, current), "invalid_argument", '"sh"');
    expectVipmeshError(() => checkDataplanesHonour(endpoint({ lbScheduler: "lc" }), nft, endpoint()), "invalid_argument", '"lc"');
  });

  it("refuses affinity or weights a dataplane cannot honour (none today: a table without them)", () => {
    const bare = { ...DATAPLANE_CAPABILITIES, ipvs: { schedulers: ["rr"] as const, affinities: ["none"] as const, weights: false } };
    const vs = [node("vs-1", "ipvs")];
    const sticky = endpoint({ lbScheduler: "rr", lbAffinity: "client-ip", lbAffinityTimeoutS: 60 });
    expectVipmeshError(() => checkDataplanesHonour(sticky, vs, undefined, bare), "invalid_argument", 'lb affinity "client-ip"', "node vs-1 (dataplane ipvs, which honours schedulers rr; no affinity; no weights)", "--lb-affinity none");
    const weighted = endpoint({ lbWeights: { "1": 0, "2": 1, "3": 5 } });
    expectVipmeshError(() => checkDataplanesHonour(weighted, vs, undefined, bare), "invalid_argument", "lb weights 3=5", "0 or 1 only");
    expect(() => checkDataplanesHonour(endpoint({ lbWeights: { "1": 0, "2": 1 } }), vs, undefined, bare)).not.toThrow();
  });
});
