import { describe, expect, it } from "vitest";
import { UsageError } from "./errors.ts";
import { resolveManager, resolveManagerAddress } from "./host.ts";

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
    const one = new Map([["lab", endpoint("lab")]]);
    expect(resolveManagerAddress({ env: {}, cwd, labs: one })).toBe("/run/vipmesh/lab/manager.sock");
    expect(resolveManagerAddress({ env: { VIPMESH_HOST: "10.0.0.1:4242" }, cwd, labs: one })).toBe("10.0.0.1:4242");
  });

  it("asks which lab when several run", () => {
    const two = new Map([
      ["a", endpoint("a")],
      ["b", endpoint("b")],
    ]);
    expect(() => resolveManagerAddress({ env: {}, cwd, labs: two })).toThrow(/several labs run here \(a, b\)/);
  });
});

function endpoint(name: string) {
  const dir = `/run/vipmesh/${name}`;
  return { socket: `${dir}/manager.sock`, tlsDir: `${dir}/manager/admin`, readonlyTlsDir: `${dir}/manager/readonly` };
}

describe("resolveManager's identity", () => {
  const cwd = "/home/me";
  it("without --tls-dir, VIPMESH_TLS_DIR or a lab, says how to give one", () => {
    expect(() => resolveManager({ flag: "10.0.0.1:4242", env: {}, cwd })).toThrow(/pass --tls-dir DIR or set VIPMESH_TLS_DIR/);
  });

  it("reads --tls-dir before VIPMESH_TLS_DIR, and says which directory lacks an identity", () => {
    expect(() => resolveManager({ flag: "10.0.0.1:4242", tlsDir: "mine", env: { VIPMESH_TLS_DIR: "/etc/theirs" }, cwd })).toThrow(
      "no TLS identity in /home/me/mine",
    );
    expect(() => resolveManager({ flag: "10.0.0.1:4242", env: { VIPMESH_TLS_DIR: "/etc/theirs" }, cwd })).toThrow("no TLS identity in /etc/theirs");
  });

  it("uses the running lab's admin identity (read-only for watchers) for the lab's manager only", () => {
    const labs = new Map([["lab", endpoint("lab")]]);
    expect(() => resolveManager({ env: {}, cwd, labs })).toThrow("no TLS identity in /run/vipmesh/lab/manager/admin");
    expect(() => resolveManager({ env: {}, cwd, labs }, "readonly")).toThrow("no TLS identity in /run/vipmesh/lab/manager/readonly");
    expect(() => resolveManager({ flag: "10.0.0.1:4242", env: {}, cwd, labs })).toThrow(/pass --tls-dir/);
  });

  it("--insecure needs no identity", () => {
    expect(resolveManager({ flag: "10.0.0.1:4242", insecure: true, env: {}, cwd })).toEqual({ address: "10.0.0.1:4242", credentials: "insecure" });
  });
});
