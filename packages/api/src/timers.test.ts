import { afterEach, describe, expect, it, vi } from "vitest";
import { timerAt, waitFor } from "./timers.ts";

describe("timerAt", () => {
  afterEach(() => vi.useRealTimers());

  it("waits past setTimeout's 24.8-day limit instead of firing at once, and fires when due", () => {
    vi.useFakeTimers();
    const fired = vi.fn();
    timerAt(Date.now() + 45 * 86_400_000, fired); // half of a 90-day certificate
    vi.advanceTimersByTime(1000);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(44 * 86_400_000);
    expect(fired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(86_400_000);
    expect(fired).toHaveBeenCalledOnce();
  });

  it("fires at once when the moment is past, and never once cleared", () => {
    vi.useFakeTimers();
    const past = vi.fn();
    timerAt(Date.now() - 5000, past);
    vi.advanceTimersByTime(0);
    expect(past).toHaveBeenCalledOnce();
    const cleared = vi.fn();
    const t = timerAt(Date.now() + 30 * 86_400_000, cleared);
    vi.advanceTimersByTime(25 * 86_400_000);
    t.clear();
    vi.advanceTimersByTime(10 * 86_400_000);
    expect(cleared).not.toHaveBeenCalled();
  });
});

describe("waitFor", () => {
  it("returns the first truthy value, past checks that throw", async () => {
    let calls = 0;
    const found = await waitFor("the third call", () => {
      calls++;
      if (calls === 1) throw new Error("not yet");
      return calls === 3 ? { calls } : null;
    });
    expect(found).toEqual({ calls: 3 });
  });

  it("times out naming what it waited for and the last error", async () => {
    const failing = () => {
      throw new Error("refused");
    };
    await expect(waitFor("the manager", failing, 30, 5)).rejects.toThrow("timed out after 30 ms waiting for the manager: Error: refused");
    await expect(waitFor("nothing", () => false, 20)).rejects.toThrow(/^timed out after 20 ms waiting for nothing$/);
  });
});
