import { tempDir } from "@vipmesh/testing";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MANAGERS_FILE, ManagerAddresses } from "./managers.ts";

let dir: ReturnType<typeof tempDir> | undefined;
afterEach(() => dir?.remove());

/** The addresses `m` dials over `n` turns, from the current one. */
const turns = (m: ManagerAddresses, n: number) => [m.current, ...Array.from({ length: n - 1 }, () => m.next())];

describe("the managers an agent dials", () => {
  it("goes round the given ones in order, one turn each", () => {
    expect(turns(new ManagerAddresses(["a:1", "b:1", "c:1"]), 7)).toEqual(["a:1", "b:1", "c:1", "a:1", "b:1", "c:1", "a:1"]);
    expect(turns(new ManagerAddresses(["a:1"]), 3)).toEqual(["a:1", "a:1", "a:1"]);
  });

  it("adds those the cluster tells after the given ones, each once, and keeps dialing the current one", () => {
    const m = new ManagerAddresses(["a:1", "b:1"]);
    m.next(); // b:1
    expect(m.learn(["c:1", "b:1", "", "a:1", "c:1"])).toBe(true);
    expect(m.all).toEqual(["a:1", "b:1", "c:1"]);
    expect(turns(m, 4)).toEqual(["b:1", "c:1", "a:1", "b:1"]);
    expect(m.learn(["c:1", "b:1", "a:1"])).toBe(false);
  });

  it("replaces what it learned before; a given address stays whatever the cluster says", () => {
    const m = new ManagerAddresses(["a:1"]);
    m.learn(["b:1", "c:1"]);
    m.next();
    m.next(); // c:1
    m.learn(["d:1"]);
    expect(m.all).toEqual(["a:1", "d:1"]);
    // c:1 is gone: its turn goes to the one now at its place
    expect(m.current).toBe("a:1");
  });

  it("keeps what it learned in the state dir for the next start", () => {
    dir = tempDir("vipmesh-managers-");
    new ManagerAddresses(["a:1"], dir.path).learn(["b:1", "c:1"]);
    expect(JSON.parse(readFileSync(join(dir.path, MANAGERS_FILE), "utf8"))).toEqual({ managers: ["b:1", "c:1"] });
    expect(new ManagerAddresses(["a:1"], dir.path).all).toEqual(["a:1", "b:1", "c:1"]);
  });

  it("takes the list even when it cannot keep it, and says so", () => {
    dir = tempDir("vipmesh-managers-");
    const m = new ManagerAddresses(["a:1"], join(dir.path, "gone"));
    expect(() => m.learn(["b:1"])).toThrow(/ENOENT/);
    expect(m.all).toEqual(["a:1", "b:1"]);
  });

  it("starts from the given ones when the kept list is unreadable", () => {
    dir = tempDir("vipmesh-managers-");
    writeFileSync(join(dir.path, MANAGERS_FILE), "{ not json");
    expect(new ManagerAddresses(["a:1"], dir.path).all).toEqual(["a:1"]);
  });

  it("refuses to start without an address", () => {
    expect(() => new ManagerAddresses([])).toThrow("at least one manager address");
  });
});
