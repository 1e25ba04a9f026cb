import { describe, expect, it } from "vitest";
import { WriteQueue } from "./write-queue.ts";

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("WriteQueue", () => {
  it("runs a lone write at once and passes its answer or error back", async () => {
    const q = new WriteQueue(5, () => 0);
    let ran = false;
    const answer = q.run(() => ((ran = true), "done"));
    expect(ran).toBe(true);
    await expect(answer).resolves.toBe("done");
    await expect(q.run(() => { throw new Error("refused"); })).rejects.toThrow("refused");
  });

  it("gives the loop a turn once a slice is used up, keeping the writes' order", async () => {
    let now = 0;
    const q = new WriteQueue(5, () => now);
    const order: number[] = [];
    // each write takes 3 ms: two fit in a 5 ms slice
    const writes = Array.from({ length: 6 }, (_, i) => q.run(() => (order.push(i), (now += 3))));
    expect(order).toEqual([0, 1]);
    await turn();
    expect(order).toEqual([0, 1, 2, 3]);
    await Promise.all(writes);
    expect(order).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it("runs at once again when idle after a flood", async () => {
    let now = 0;
    const q = new WriteQueue(5, () => now);
    await Promise.all(Array.from({ length: 4 }, () => q.run(() => (now += 3))));
    await turn();
    now += 1000;
    let ran = false;
    void q.run(() => (ran = true));
    expect(ran).toBe(true);
  });
});
