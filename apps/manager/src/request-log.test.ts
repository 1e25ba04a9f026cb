import { describe, expect, it } from "vitest";
import { RequestLog } from "./request-log.ts";

describe("RequestLog", () => {
  it("answers a repeated key with the first answer without running it again", () => {
    const log = new RequestLog();
    let runs = 0;
    const first = log.answer("CreateService/a", () => ({ id: ++runs }));
    expect(log.answer("CreateService/a", () => ({ id: ++runs }))).toBe(first);
    expect(runs).toBe(1);
    expect(log.answer("CreateService/b", () => ({ id: ++runs }))).toEqual({ id: 2 });
  });

  it("keeps no refusal: a repeat runs again", () => {
    const log = new RequestLog();
    expect(() => log.answer("k", () => { throw new Error("already exists"); })).toThrow("already exists");
    expect(log.answer("k", () => ({ ok: true }))).toEqual({ ok: true });
  });

  it("forgets the oldest past its count and anything past its age", () => {
    let now = 0;
    const log = new RequestLog({ count: 2, ageMs: 1000 }, () => now);
    for (const k of ["a", "b", "c"]) log.answer(k, () => ({ k }));
    expect(log.size).toBe(2);
    expect(log.answer("a", () => ({ k: "a again" }))).toEqual({ k: "a again" });
    expect(log.answer("c", () => ({ k: "c again" }))).toEqual({ k: "c" });
    now = 1001;
    expect(log.answer("c", () => ({ k: "c again" }))).toEqual({ k: "c again" });
    expect(log.size).toBe(1);
  });
});
