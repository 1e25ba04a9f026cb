import { describe, expect, it } from "vitest";
import { FanoutPace, MAX_HOLD_MS, STRAGGLER_WAIT_MS } from "./fanout-pace.ts";

describe("FanoutPace", () => {
  const nodes = (n: number) => Array.from({ length: n }, (_, i) => `n${i}`);

  it("lets a fan-out go at once when every session applied the last one, or none was sent", () => {
    const pace = new FanoutPace(() => 0);
    expect(pace.wait()).toBe(0);
    pace.sent(nodes(3));
    for (const n of nodes(3)) pace.done(n);
    expect(pace.wait()).toBe(0);
  });

  it("holds the next one while many sessions are still applying, at most MAX_HOLD_MS", () => {
    let now = 0;
    const pace = new FanoutPace(() => now);
    pace.sent(nodes(100));
    for (const n of nodes(90)) pace.done(n);
    expect(pace.wait()).toBe(MAX_HOLD_MS);
    now = 60;
    expect(pace.wait()).toBe(MAX_HOLD_MS - 60);
    now = MAX_HOLD_MS + 1;
    expect(pace.wait()).toBe(0);
  });

  it("waits only briefly for the last few stragglers (5%, at least one)", () => {
    let now = 0;
    const pace = new FanoutPace(() => now);
    pace.sent(nodes(100));
    for (const n of nodes(95)) pace.done(n);
    expect(pace.wait()).toBe(STRAGGLER_WAIT_MS);
    now = STRAGGLER_WAIT_MS;
    expect(pace.wait()).toBe(0);
    pace.sent(nodes(3));
    pace.done("n0");
    now += STRAGGLER_WAIT_MS;
    expect(pace.wait()).toBe(MAX_HOLD_MS - STRAGGLER_WAIT_MS); // two of three still applying
    pace.done("n1");
    expect(pace.wait()).toBe(0); // one straggler, and the brief wait has passed
    expect(pace.done("n9")).toBe(false);
  });
});
