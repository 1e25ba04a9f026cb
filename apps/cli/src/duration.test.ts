import { describe, expect, it } from "vitest";
import { formatDuration, parseDuration } from "./duration.ts";

describe("parseDuration", () => {
  it.each([
    ["500ms", 500],
    ["5s", 5000],
    ["1m", 60_000],
    ["1h30m", 5_400_000],
    ["1.5s", 1500],
    ["2m30s", 150_000],
    ["0", 0],
    ["0s", 0],
    ["1000us", 1],
    ["1500000ns", 2],
  ])("%s is %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(["", "5", "5x", "s", "-5s", "5s garbage", "1.2.3s"])("rejects %j", (text) => {
    expect(() => parseDuration(text)).toThrow(/is not a duration/);
  });
});

describe("formatDuration", () => {
  it("prints whole and fractional seconds, and milliseconds below a second", () => {
    expect(formatDuration(120_000)).toBe("120s");
    expect(formatDuration(1500)).toBe("1.5s");
    expect(formatDuration(500)).toBe("500ms");
  });
});
