import { describe, expect, it } from "vitest";
import { UsageError } from "./errors.ts";
import { resolveManagerAddress } from "./host.ts";

const cwd = "/home/me";

describe("resolveManagerAddress", () => {
  it("prefers --host over VIPMESH_HOST", () => {
    expect(resolveManagerAddress({ flag: "10.0.0.1:4242", env: { VIPMESH_HOST: "other:1" }, cwd })).toBe(
      "10.0.0.1:4242",
    );
  });

  it("falls back to VIPMESH_HOST", () => {
    expect(resolveManagerAddress({ env: { VIPMESH_HOST: "127.0.0.1:4242" }, cwd })).toBe("127.0.0.1:4242");
  });

  it("makes socket paths absolute and keeps unix: targets", () => {
    expect(resolveManagerAddress({ flag: "/run/vipmesh.sock", env: {}, cwd })).toBe("/run/vipmesh.sock");
    expect(resolveManagerAddress({ flag: "lab/manager.sock", env: {}, cwd })).toBe("/home/me/lab/manager.sock");
    expect(resolveManagerAddress({ flag: "unix:///run/x.sock", env: {}, cwd })).toBe("unix:///run/x.sock");
  });

  it("says how to give an address when there is none", () => {
    expect(() => resolveManagerAddress({ env: {}, cwd })).toThrow(UsageError);
    expect(() => resolveManagerAddress({ env: {}, cwd })).toThrow(/pass --host ADDR or set VIPMESH_HOST/);
  });

  it("uses the running lab's socket when no address is given, but never over one that is", () => {
    const one = new Map([["lab", "/run/vipmesh/lab/manager.sock"]]);
    expect(resolveManagerAddress({ env: {}, cwd, labs: one })).toBe("/run/vipmesh/lab/manager.sock");
    expect(resolveManagerAddress({ env: { VIPMESH_HOST: "10.0.0.1:4242" }, cwd, labs: one })).toBe("10.0.0.1:4242");
  });

  it("asks which lab when several run", () => {
    const two = new Map([
      ["a", "/run/vipmesh/a/manager.sock"],
      ["b", "/run/vipmesh/b/manager.sock"],
    ]);
    expect(() => resolveManagerAddress({ env: {}, cwd, labs: two })).toThrow(/several labs run here \(a, b\)/);
  });
});
