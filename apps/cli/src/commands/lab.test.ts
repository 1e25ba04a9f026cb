import { describe, expect, it } from "vitest";
import { managersOnEtcd, nodeResources } from "./lab.ts";

describe("--node-resources", () => {
  it("reads NODE=cpus=N,memory=SIZE in Docker's units, later flags for a node merging over earlier ones", () => {
    expect(nodeResources(["node2=cpus=1.5,memory=512m", "node3=memory=1g", "node2=cpus=0.5"])).toEqual({
      node2: { nanoCpus: 500_000_000, memoryBytes: 512 * 1024 * 1024 },
      node3: { memoryBytes: 1024 ** 3 },
    });
    expect(nodeResources([])).toEqual({});
  });

  it("says what is wrong with a malformed one", () => {
    expect(() => nodeResources(["node2"])).toThrow('--node-resources wants NODE=cpus=N,memory=SIZE (e.g. node2=cpus=1,memory=512m), got "node2"');
    expect(() => nodeResources(["node2=disk=1g"])).toThrow('--node-resources node2=disk=1g: unknown field "disk": cpus or memory');
    expect(() => nodeResources(["node2=cpus=two"])).toThrow("--node-resources node2=cpus=two: expected a number of CPUs, e.g. 0.5 or 2");
    expect(() => nodeResources(["node2=memory=lots"])).toThrow(/--node-resources node2=memory=lots: expected a size like 512m/);
  });
});

describe("--managers and --store", () => {
  it("one manager on SQLite by default; several on etcd, or one with --store etcd", () => {
    expect(managersOnEtcd(1, undefined)).toBe(0);
    expect(managersOnEtcd(1, "sqlite")).toBe(0);
    expect(managersOnEtcd(1, "etcd")).toBe(1);
    expect(managersOnEtcd(3, undefined)).toBe(3);
    expect(managersOnEtcd(3, "etcd")).toBe(3);
  });

  it("refuses several managers on SQLite, an unknown store, and counts out of range", () => {
    expect(() => managersOnEtcd(3, "sqlite")).toThrow("several managers share their state through etcd: --store etcd, or --managers 1");
    expect(() => managersOnEtcd(1, "redis")).toThrow('--store must be sqlite or etcd, got "redis"');
    expect(() => managersOnEtcd(0, undefined)).toThrow("--managers must be between 1 and 7");
    expect(() => managersOnEtcd(8, "etcd")).toThrow("--managers must be between 1 and 7");
  });
});
