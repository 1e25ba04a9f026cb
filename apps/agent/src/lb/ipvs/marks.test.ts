import type { LbPlan, LbService } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { IPVS_TABLE, marksFor, renderMarks, renderMarksChange } from "./marks.ts";

const svc = (vip: string, fwmark: number | undefined, ready: number): LbService => ({
  serviceId: vip,
  name: vip,
  vip,
  ...(fwmark ? { fwmark } : {}),
  scheduler: "rr",
  backends: Array.from({ length: ready }, (_, i) => ({ ip: `10.0.9.${i + 1}`, weight: 1 })),
});
const plan = (...services: LbPlan["services"]): LbPlan => ({ services });

describe("the IPVS marks table", () => {
  it("maps each marked VIP to its mark in one map, and refuses VIPs without a ready task", () => {
    const m = marksFor(plan(svc("10.0.1.2", 256, 2), svc("10.0.1.3", 257, 0), svc("10.0.1.4", undefined, 1)));
    expect([...m.marks]).toEqual([["10.0.1.2", 256], ["10.0.1.3", 257]]);
    expect([...m.empty]).toEqual(["10.0.1.3"]);
    const script = renderMarks(m);
    expect(script).toContain("elements = { 10.0.1.2 : 256, 10.0.1.3 : 257 }");
    expect(script).toContain("meta mark set ip daddr map @vip_marks");
    expect(script.match(/ip daddr @vips_without_backends/g)).toHaveLength(4);
  });

  it("changes by elements: a service added or gone, a VIP losing its last task, costs its own elements only", () => {
    const before = marksFor(plan(svc("10.0.1.2", 256, 2), svc("10.0.1.3", 257, 1)));
    expect(renderMarksChange(before, before)).toBe("");
    const after = marksFor(plan(svc("10.0.1.2", 256, 0), svc("10.0.1.5", 258, 1)));
    expect(renderMarksChange(before, after).split("\n")).toEqual([
      `delete element ip ${IPVS_TABLE} vip_marks { 10.0.1.3 }`,
      `add element ip ${IPVS_TABLE} vip_marks { 10.0.1.5 : 258 }`,
      `add element ip ${IPVS_TABLE} vips_without_backends { 10.0.1.2 }`,
      "",
    ]);
    expect(renderMarksChange(after, before)).toContain(`delete element ip ${IPVS_TABLE} vips_without_backends { 10.0.1.2 }`);
  });

  it("a VIP whose mark changed is deleted and added again in the same transaction", () => {
    const change = renderMarksChange(marksFor(plan(svc("10.0.1.2", 256, 1))), marksFor(plan(svc("10.0.1.2", 300, 1))));
    expect(change).toBe(`delete element ip ${IPVS_TABLE} vip_marks { 10.0.1.2 }\nadd element ip ${IPVS_TABLE} vip_marks { 10.0.1.2 : 300 }\n`);
  });
});
