import { afterEach, describe, expect, it, vi } from "vitest";
import { timerAt } from "./timers.ts";

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
