import { describe, expect, it } from "vitest";
import { RECONNECT_MAX_BACKOFF_MS, RECONNECT_MIN_BACKOFF_MS, reconnectDelayMs } from "./session-timing.ts";

describe("reconnectDelayMs", () => {
  it("doubles from the minimum, jittered over the upper half of each step", () => {
    expect([0, 1, 2].map((n) => reconnectDelayMs(n, () => 0))).toEqual([50, 100, 200]);
    expect([0, 1, 2].map((n) => reconnectDelayMs(n, () => 1))).toEqual([100, 200, 400]);
    expect(reconnectDelayMs(0, () => 0.5)).toBe(RECONNECT_MIN_BACKOFF_MS * 0.75);
  });

  it("never waits longer than the cap, however long the outage", () => {
    for (const failures of [5, 10, 100, 10_000]) {
      expect(reconnectDelayMs(failures, () => 1)).toBe(RECONNECT_MAX_BACKOFF_MS);
      expect(reconnectDelayMs(failures, () => 0)).toBe(RECONNECT_MAX_BACKOFF_MS / 2);
    }
  });
});
