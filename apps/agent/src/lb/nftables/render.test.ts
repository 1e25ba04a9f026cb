import { readFileSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { MAX_DELTA_SLICE_DELETES, MAX_ELEMENTS_PER_STATEMENT, NftRenderError, renderChange, renderDelta, renderRuleset } from "./render.ts";
import type { LbPlan } from "@vipmesh/core";
import { goldenPlans, svc } from "./testdata/plans.ts";

const update = process.env.UPDATE_GOLDEN === "1";

describe("renderRuleset golden files (UPDATE_GOLDEN=1 rewrites them)", () => {
  for (const [name, plan] of Object.entries(goldenPlans)) {
    it(name, () => {
      const file = new URL(`./testdata/${name}.nft`, import.meta.url);
      const got = renderRuleset(plan);
      if (update) writeFileSync(file, got);
      expect(got).toBe(readFileSync(file, "utf8"));
    });
  }
});

const statements = (script: string) => script.split("\n").filter((l) => /^(add|delete|flush) /.test(l));
/** Element lines of a script (one element a line, comments apart). */
const elements = (script: string) => script.split("\n").filter((l) => l.startsWith("\t") && !l.startsWith("\t#"));

describe("renderRuleset", () => {
  it("touches only its own table, and replaces it in one go", () => {
    const script = renderRuleset(goldenPlans["one-service-three-backends"]!);
    for (const s of statements(script)) expect(s).toMatch(/^(add|delete|flush) \w+ ip vipmesh\b/);
    expect(statements(script).slice(0, 3)).toEqual(["add table ip vipmesh", "delete table ip vipmesh", "add table ip vipmesh"]);
    expect(script).not.toMatch(/dstnat|srcnat|flush ruleset/);
  });

  it("keeps every element statement within 1,000 elements", () => {
    const script = renderRuleset(goldenPlans["chunked-2002-elements"]!);
    const chunks = script.split(/^add element /m).slice(1).map((c) => elements(c.slice(0, c.indexOf("\n}"))).length);
    expect(chunks).toEqual([MAX_ELEMENTS_PER_STATEMENT, MAX_ELEMENTS_PER_STATEMENT, 2]);
  });

  it("refuses an address that is not one, and a VIP twice", () => {
    expect(() => renderRuleset({ services: [svc("svc-x", "10.0.1.2; flush ruleset", [])] })).toThrow(NftRenderError);
    expect(() => renderRuleset({ services: [svc("svc-x", "10.0.1.2", ["10.0.1.5\n"])] })).toThrow(NftRenderError);
    expect(() => renderRuleset({ services: [svc("svc-x", "10.0.1.2", []), svc("svc-y", "10.0.1.2", [])] })).toThrow(/twice/);
  });

  it("keeps a service name from ending its comment", () => {
    const script = renderRuleset({ services: [{ ...svc("svc-x", "10.0.1.2", []), name: "x\nflush ruleset" }] });
    expect(script).not.toMatch(/^flush ruleset/m);
  });
});

describe("renderDelta", () => {
  const three = goldenPlans["one-service-three-backends"]!;

  it("is empty when nothing changed", () => {
    expect(renderDelta(three, structuredClone(three))).toBe("");
  });

  it("changes only the elements of the service whose endpoint changed", () => {
    const next = { services: [...three.services, svc("svc-db", "10.0.1.3", ["10.0.1.20"])] };
    const prev = { services: [...three.services.map((s) => s), svc("svc-db", "10.0.1.3", ["10.0.1.20", "10.0.1.21"])] };
    expect(renderDelta(prev, next)).toBe(
      [
        "# vipmesh load balancing: changes since the last sync, one transaction.",
        "delete element ip vipmesh be {",
        "\t# 10.0.1.3 db (svc-db)",
        "\t10.0.1.3 . 0-32767,",
        "\t10.0.1.3 . 32768-65535",
        "}",
        "add element ip vipmesh be {",
        "\t# 10.0.1.3 db (svc-db)",
        "\t10.0.1.3 . 0-65535 : 10.0.1.20",
        "}",
        "",
      ].join("\n"),
    );
  });

  it("moves a VIP that lost its last backend to the refusing set, and back", () => {
    const none = { services: [svc("svc-web", "10.0.1.2", [])] };
    const down = renderDelta(three, none);
    expect(statements(down)).toEqual(["delete element ip vipmesh be {", "add element ip vipmesh vips_without_backends {"]);
    expect(elements(down)).toEqual(["\t10.0.1.2 . 0-21844,", "\t10.0.1.2 . 21845-43689,", "\t10.0.1.2 . 43690-65535", "\t10.0.1.2"]);
    expect(statements(renderDelta(none, three))).toEqual(["delete element ip vipmesh vips_without_backends {", "add element ip vipmesh be {"]);
  });

  it("costs O(backends of the changed service), whatever the number of services", () => {
    const many = goldenPlans["chunked-2002-elements"]!;
    const next = structuredClone(many);
    next.services[500]!.backends.push({ ip: "10.9.9.9", weight: 1 });
    // 2 slices out, 3 in
    expect(elements(renderDelta(many, next))).toHaveLength(5);
  });

  it("replaces an rr VIP's rule, and adds or removes its chain", () => {
    const rr = goldenPlans["rr-and-random"]!;
    const grown = structuredClone(rr);
    grown.services[1]!.backends.push({ ip: "10.0.1.10", weight: 1 });
    expect(statements(renderDelta(rr, grown))).toEqual([
      "flush chain ip vipmesh rr_10_0_1_3",
      "add rule ip vipmesh rr_10_0_1_3 dnat to numgen inc mod 4 map { 0 : 10.0.1.8, 1-2 : 10.0.1.9, 3 : 10.0.1.10 }",
    ]);
    const gone = { services: [rr.services[0]!] };
    expect(statements(renderDelta(rr, gone))).toEqual([
      "delete element ip vipmesh vip_chains {",
      "flush chain ip vipmesh rr_10_0_1_3",
      "delete chain ip vipmesh rr_10_0_1_3",
    ]);
  });
});

describe("client-IP affinity", () => {
  const sticky = goldenPlans["client-ip-affinity"]!;
  const rules = (script: string) => script.split("\n").filter((l) => l.startsWith("add rule "));
  /** The plan with `vip`'s service changed. */
  const changed = (plan: LbPlan, vip: string, change: (s: LbPlan["services"][number]) => void): LbPlan => {
    const next = structuredClone(plan);
    change(next.services.find((s) => s.vip === vip)!);
    return next;
  };

  it("costs VIPs without it nothing: the same two nat rules, no chain, no element of theirs", () => {
    const plain = renderRuleset(goldenPlans["one-service-three-backends"]!);
    const nat = (script: string) => rules(script).filter((r) => / nat_(output|prerouting) /.test(r));
    expect(nat(renderRuleset(sticky))).toEqual(nat(plain));
    expect(nat(plain)).toHaveLength(4);
    expect(rules(plain).filter((r) => !/ (nat|filter)_/.test(r))).toEqual([]);
    // db (10.0.1.3) has no affinity: in @be only
    expect(renderRuleset(sticky).match(/^\t10\.0\.1\.3\b.*$/gm)).toEqual(["\t10.0.1.3 . 0-65535 : 10.0.1.8,"]);
  });

  it("shares one chain among the random VIPs of one timeout", () => {
    const chains = (script: string) => script.split("\n").filter((l) => l.startsWith("add chain ") && !l.includes(" hook "));
    expect(chains(renderRuleset(sticky))).toEqual(["add chain ip vipmesh affinity_10800"]);
    expect(chains(renderRuleset(goldenPlans["client-ip-affinity-rr-and-timeouts"]!))).toEqual([
      "add chain ip vipmesh affinity_600",
      "add chain ip vipmesh rr_10_0_1_2",
    ]);
  });

  it("changes only elements when an affinity VIP's backends change, a drain included", () => {
    const grown = changed(sticky, "10.0.1.2", (s) => s.backends.push({ ip: "10.0.1.11", weight: 1 }));
    expect(statements(renderDelta(sticky, grown))).toEqual(["delete element ip vipmesh be {", "add element ip vipmesh be {", "add element ip vipmesh affinity_backends {"]);
    const drained = changed(sticky, "10.0.1.2", (s) => (s.backends[0]!.weight = 0));
    const delta = renderDelta(sticky, drained);
    expect(statements(delta)).toEqual(["delete element ip vipmesh be {", "delete element ip vipmesh affinity_backends {", "add element ip vipmesh be {"]);
    expect(elements(delta)).toContain("\t10.0.1.2 . 10.0.1.5");
  });

  it("adds a VIP of a timeout in use with elements only, and a new timeout with its chain", () => {
    const before = { services: sticky.services.filter((s) => s.vip !== "10.0.1.4") };
    expect(statements(renderDelta(before, sticky))).toEqual(["add element ip vipmesh vip_chains {", "add element ip vipmesh be {", "add element ip vipmesh affinity_backends {"]);
    const other = changed(sticky, "10.0.1.4", (s) => (s.affinityTimeoutS = 60));
    const delta = statements(renderDelta(sticky, other));
    expect(delta[0]).toBe("delete element ip vipmesh vip_chains {");
    expect(delta.filter((l) => l.startsWith("add chain") || l.startsWith("delete chain"))).toEqual(["add chain ip vipmesh affinity_60"]);
    expect(delta.at(-1)).toBe("add element ip vipmesh vip_chains {");
    // the last VIP of a timeout gone: its element first, then its chain
    const back = statements(renderDelta(other, sticky));
    expect(back.slice(0, 3)).toEqual(["delete element ip vipmesh vip_chains {", "flush chain ip vipmesh affinity_60", "delete chain ip vipmesh affinity_60"]);
  });

  it("turns affinity on and off for an rr VIP by replacing its chain's rules", () => {
    const rr = goldenPlans["rr-and-random"]!;
    const on = changed(rr, "10.0.1.3", (s) => (s.affinityTimeoutS = 30));
    const delta = statements(renderDelta(rr, on));
    expect(delta[0]).toBe("flush chain ip vipmesh rr_10_0_1_3");
    expect(delta.filter((l) => l.startsWith("add rule"))).toHaveLength(6);
    expect(delta.at(-1)).toBe("add element ip vipmesh affinity_backends {");
    expect(statements(renderDelta(on, rr))).toEqual([
      "delete element ip vipmesh affinity_backends {",
      "flush chain ip vipmesh rr_10_0_1_3",
      "add rule ip vipmesh rr_10_0_1_3 dnat to numgen inc mod 3 map { 0 : 10.0.1.8, 1-2 : 10.0.1.9 }",
    ]);
  });

  it("refuses a timeout that is not a positive whole number of seconds", () => {
    for (const t of [0, -5, 1.5]) {
      expect(() => renderRuleset({ services: [svc("svc-x", "10.0.1.2", ["10.0.1.5"], "random", t)] })).toThrow(NftRenderError);
    }
  });
});

describe("renderChange: what the agent loads", () => {
  const many = goldenPlans["chunked-2002-elements"]!;
  /** `n` services of `plan` lose their first backend. */
  const shrink = (plan: LbPlan, n: number): LbPlan => ({
    services: plan.services.map((s, i) => (i < n ? { ...s, backends: s.backends.slice(1) } : s)),
  });

  it("loads the whole ruleset when nothing is known, nothing when nothing changed, else the delta", () => {
    expect(renderChange(undefined, many)).toEqual({ script: renderRuleset(many), full: true });
    expect(renderChange(many, structuredClone(many))).toEqual({ script: "", full: false });
    expect(renderChange(many, shrink(many, 3))).toEqual({ script: renderDelta(many, shrink(many, 3)), full: false });
  });

  it("loads the whole ruleset when the delta would delete more slices than a full load costs", () => {
    // each shrunk service deletes its old slices (two) and adds one covering everything
    const under = Math.floor(MAX_DELTA_SLICE_DELETES / 2);
    expect(renderChange(many, shrink(many, under)).full).toBe(false);
    expect(renderChange(many, shrink(many, under + 1))).toEqual({ script: renderRuleset(shrink(many, under + 1)), full: true });
  });
});
