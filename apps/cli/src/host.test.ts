import { describe, expect, it } from "vitest";
import { UsageError } from "./errors.ts";
import { resolveManager, resolveManagerAddresses } from "./host.ts";

const cwd = "/home/me";

describe("resolveManagerAddresses", () => {
  it("prefers --host over VIPMESH_HOST", () => {
    expect(resolveManagerAddresses({ flag: "10.0.0.1:4242", env: { VIPMESH_HOST: "other:1" }, cwd })).toEqual(["10.0.0.1:4242"]);
  });

  it("falls back to VIPMESH_HOST", () => {
    expect(resolveManagerAddresses({ env: { VIPMESH_HOST: "127.0.0.1:4242" }, cwd })).toEqual(["127.0.0.1:4242"]);
  });

  it("makes socket paths absolute and keeps unix: targets", () => {
    expect(resolveManagerAddresses({ flag: "/run/vipmesh.sock", env: {}, cwd })).toEqual(["/run/vipmesh.sock"]);
    expect(resolveManagerAddresses({ flag: "lab/manager.sock", env: {}, cwd })).toEqual(["/home/me/lab/manager.sock"]);
    expect(resolveManagerAddresses({ flag: "unix:///run/x.sock", env: {}, cwd })).toEqual(["unix:///run/x.sock"]);
  });

  it("says how to give an address when there is none", () => {
    expect(() => resolveManagerAddresses({ env: {}, cwd })).toThrow(UsageError);
    expect(() => resolveManagerAddresses({ env: {}, cwd })).toThrow(/pass --host ADDR or set VIPMESH_HOST/);
  });

  it("uses the running lab's socket when no address is given, but never over one that is", () => {
    const one = new Map([["lab", endpoint("lab")]]);
    expect(resolveManagerAddresses({ env: {}, cwd, labs: one })).toEqual(["/run/vipmesh/lab/manager.sock"]);
    expect(resolveManagerAddresses({ env: { VIPMESH_HOST: "10.0.0.1:4242" }, cwd, labs: one })).toEqual(["10.0.0.1:4242"]);
  });

  it("takes a comma-separated list, in order, each address normalized once", () => {
    expect(resolveManagerAddresses({ flag: "10.0.0.1:4242, 10.0.0.2:4242,,lab/m.sock,10.0.0.1:4242", env: {}, cwd })).toEqual([
      "10.0.0.1:4242",
      "10.0.0.2:4242",
      "/home/me/lab/m.sock",
    ]);
    expect(resolveManagerAddresses({ env: { VIPMESH_HOST: "a:1,b:2" }, cwd })).toEqual(["a:1", "b:2"]);
    expect(() => resolveManagerAddresses({ flag: ",", env: {}, cwd })).toThrow("--host ,: give a manager's address");
  });

  it("uses every manager of a lab of several, and the lab's identity for any of them", () => {
    const sockets = ["/run/vipmesh/lab/m1.sock", "/run/vipmesh/lab/m2.sock"];
    const labs = new Map([["lab", { ...endpoint("lab"), managerSockets: sockets }]]);
    expect(resolveManagerAddresses({ env: {}, cwd, labs })).toEqual(sockets);
    expect(() => resolveManager({ flag: sockets[1], env: {}, cwd, labs })).toThrow("no TLS identity in /run/vipmesh/lab/manager/admin");
  });

  it("asks which lab when several run", () => {
    const two = new Map([
      ["a", endpoint("a")],
      ["b", endpoint("b")],
    ]);
    expect(() => resolveManagerAddresses({ env: {}, cwd, labs: two })).toThrow(/several labs run here \(a, b\)/);
  });
});

function endpoint(name: string) {
  const dir = `/run/vipmesh/${name}`;
  return { socket: `${dir}/manager.sock`, managerSockets: [`${dir}/manager.sock`], tlsDir: `${dir}/manager/admin`, readonlyTlsDir: `${dir}/manager/readonly` };
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
    expect(resolveManager({ flag: "10.0.0.1:4242", insecure: true, env: {}, cwd })).toEqual({
      address: "10.0.0.1:4242",
      addresses: ["10.0.0.1:4242"],
      credentials: "insecure",
    });
  });
});
