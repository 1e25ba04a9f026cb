import { describe, expect, it } from "vitest";
import { RateLimiter } from "./rate-limit.ts";

describe("RateLimiter", () => {
  it("lets `count` events per key through in any window, and says when the next may come", () => {
    let now = 1000;
    const limiter = new RateLimiter(2, 60_000, () => now);
    expect(limiter.take("a")).toBe(true);
    now += 10_000;
    expect(limiter.take("a")).toBe(true);
    expect(limiter.take("a")).toBe(false);
    expect(limiter.take("b")).toBe(true); // keys are apart
    // the first event leaves the window 60 s after it: 50 s from now
    expect(limiter.retryInMs("a")).toBe(50_000);
    now += 49_999;
    expect(limiter.take("a")).toBe(false); // a refusal records nothing
    now += 1;
    expect(limiter.retryInMs("a")).toBe(0);
    expect(limiter.take("a")).toBe(true);
    expect(limiter.retryInMs("a")).toBe(10_000);
  });
});
