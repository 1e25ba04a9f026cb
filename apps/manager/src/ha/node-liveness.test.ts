import { describe, expect, it } from "vitest";
import { DownTimers } from "./node-liveness.ts";

const WINDOW = 3000;
const GRACE = 10_000;

describe("DownTimers", () => {
  const node = (id: string, down = false) => ({ id, down });

  it("gives every node without a key the restart grace at takeover, then marks it down", () => {
    const t = new DownTimers(WINDOW, GRACE);
    t.begin(0);
    const keys = new Set(["a"]);
    const nodes = [node("a"), node("b"), node("c", true)];
    expect(t.observe(0, nodes, (n) => keys.has(n))).toEqual([]);
    expect(t.observe(GRACE - 1, nodes, (n) => keys.has(n))).toEqual([]);
    expect(t.observe(GRACE, nodes, (n) => keys.has(n))).toEqual(["b"]); // c is down already, a has a key
  });

  it("gives a key that goes after the grace the window, and cancels the timer when the key comes back", () => {
    const t = new DownTimers(WINDOW, GRACE);
    t.begin(0);
    const keys = new Set(["a"]);
    const nodes = [node("a")];
    t.observe(0, nodes, (n) => keys.has(n));
    keys.delete("a");
    expect(t.observe(GRACE + 1000, nodes, (n) => keys.has(n))).toEqual([]);
    keys.add("a");
    expect(t.observe(GRACE + 2000, nodes, (n) => keys.has(n))).toEqual([]);
    keys.delete("a");
    // timed from when it went again, not from the first loss
    expect(t.observe(GRACE + 3000, nodes, (n) => keys.has(n))).toEqual([]);
    expect(t.observe(GRACE + 3000 + WINDOW - 1, nodes, (n) => keys.has(n))).toEqual([]);
    expect(t.observe(GRACE + 3000 + WINDOW, nodes, (n) => keys.has(n))).toEqual(["a"]);
  });

  it("keeps the grace for a key lost during it", () => {
    const t = new DownTimers(WINDOW, GRACE);
    t.begin(0);
    expect(t.observe(GRACE - 100, [node("a")], () => false)).toEqual([]);
    expect(t.observe(GRACE - 100 + WINDOW - 1, [node("a")], () => false)).toEqual([]);
    expect(t.observe(GRACE - 100 + WINDOW, [node("a")], () => false)).toEqual(["a"]);
  });

  it("asks again, a second later, for a node whose marking down has not shown yet", () => {
    const t = new DownTimers(WINDOW, 0);
    t.begin(0);
    expect(t.observe(0, [node("a")], () => false)).toEqual([]);
    expect(t.observe(WINDOW, [node("a")], () => false)).toEqual(["a"]);
    expect(t.observe(WINDOW + 500, [node("a")], () => false)).toEqual([]);
    expect(t.observe(WINDOW + 1000, [node("a")], () => false)).toEqual(["a"]);
    expect(t.observe(WINDOW + 1100, [node("a", true)], () => false)).toEqual([]);
  });

  it("judges afresh after a new takeover: a timer of the previous term is not kept", () => {
    const t = new DownTimers(WINDOW, GRACE);
    t.begin(0);
    t.observe(GRACE + 1, [node("a")], () => false); // timer: GRACE + 1 + WINDOW
    t.begin(GRACE + 2);
    expect(t.observe(GRACE + 1 + WINDOW, [node("a")], () => false)).toEqual([]);
    expect(t.observe(2 * GRACE + 2, [node("a")], () => false)).toEqual(["a"]);
  });

  it("forgets removed nodes and times a new node from when it is first seen", () => {
    const t = new DownTimers(WINDOW, 0);
    t.begin(0);
    t.observe(0, [node("a")], () => false);
    expect(t.observe(1000, [], () => false)).toEqual([]);
    expect(t.observe(WINDOW + 10, [node("a")], () => false)).toEqual([]); // seen again: timed from now
    expect(t.observe(2 * WINDOW + 9, [node("a")], () => false)).toEqual([]);
    expect(t.observe(2 * WINDOW + 10, [node("a")], () => false)).toEqual(["a"]);
  });
});
