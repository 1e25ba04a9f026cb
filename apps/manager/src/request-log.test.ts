import { describe, expect, it } from "vitest";
import { RequestLog } from "./request-log.ts";

describe("RequestLog", () => {
  it("answers a repeated key with the first answer without running it again", async () => {
    const log = new RequestLog();
    let runs = 0;
    const first = await log.answer("CreateService/a", async () => ({ id: ++runs }));
    expect(await log.answer("CreateService/a", async () => ({ id: ++runs }))).toBe(first);
    expect(runs).toBe(1);
    expect(await log.answer("CreateService/b", async () => ({ id: ++runs }))).toEqual({ id: 2 });
  });

  it("gives a repeat that comes while the first is being committed the same answer", async () => {
    const log = new RequestLog();
    let release!: (v: { id: number }) => void;
    let runs = 0;
    const first = log.answer("k", () => (runs++, new Promise<{ id: number }>((r) => (release = r))));
    const repeat = log.answer("k", async () => ({ id: ++runs + 100 }));
    release({ id: 1 });
    expect(await repeat).toBe(await first);
    expect(runs).toBe(1);
  });

  it("keeps no refusal: a repeat runs again", async () => {
    const log = new RequestLog();
    await expect(log.answer("k", async () => { throw new Error("already exists"); })).rejects.toThrow("already exists");
    expect(await log.answer("k", async () => ({ ok: true }))).toEqual({ ok: true });
  });

  it("forgets the oldest past its count and anything past its age", async () => {
    let now = 0;
    const log = new RequestLog({ count: 2, ageMs: 1000 }, () => now);
    for (const k of ["a", "b", "c"]) await log.answer(k, async () => ({ k }));
    expect(log.size).toBe(2);
    expect(await log.answer("a", async () => ({ k: "a again" }))).toEqual({ k: "a again" });
    expect(await log.answer("c", async () => ({ k: "c again" }))).toEqual({ k: "c" });
    now = 1001;
    expect(await log.answer("c", async () => ({ k: "c again" }))).toEqual({ k: "c again" });
    expect(log.size).toBe(1);
  });
});
