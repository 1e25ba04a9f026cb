import * as grpc from "@grpc/grpc-js";
import { status } from "@grpc/grpc-js";
import { ClusterServiceDef, STALE_METADATA } from "@vipmesh/api";
import { afterEach, describe, expect, it } from "vitest";
import { CommandFailed } from "./errors.ts";
import { describeManagerError, withConnection } from "./manager-connection.ts";

describe("describeManagerError", () => {
  it("passes the manager's own message through", () => {
    expect(describeManagerError({ code: status.NOT_FOUND, details: "service web not found" }, "h:1", 5000)).toBe(
      "service web not found",
    );
  });

  it("names the address when the manager cannot be reached", () => {
    const details = "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ";
    expect(describeManagerError({ code: status.UNAVAILABLE, details }, "127.0.0.1:1", 5000)).toBe(
      "cannot reach the vipmesh manager at 127.0.0.1:1 (connect ECONNREFUSED 127.0.0.1:1); " +
        "is it running? Pass --host or set VIPMESH_HOST",
    );
    const older = "No connection established. Last error: connect ENOENT /run/x.sock (2025-01-01T00:00:00.000Z)";
    expect(describeManagerError({ code: status.UNAVAILABLE, details: older }, "/run/x.sock", 5000)).toContain(
      "at /run/x.sock (connect ENOENT /run/x.sock);",
    );
  });

  it("keeps an UNAVAILABLE the manager chose to send", () => {
    expect(describeManagerError({ code: status.UNAVAILABLE, details: "the store is closing" }, "h:1", 5000)).toBe(
      "the store is closing",
    );
  });

  it("says when the manager did not answer in time", () => {
    expect(describeManagerError({ code: status.DEADLINE_EXCEEDED, details: "Deadline exceeded" }, "h:1", 30_000)).toBe(
      "the vipmesh manager at h:1 did not answer within 30s",
    );
  });

  it("falls back to the status name without details", () => {
    expect(describeManagerError({ code: status.INTERNAL, details: "" }, "h:1", 5000)).toBe("INTERNAL");
  });
});

describe("a connection to several managers", () => {
  const servers: grpc.Server[] = [];
  afterEach(() => {
    for (const s of servers.splice(0)) s.forceShutdown();
  });

  /** Nothing listens on port 1 of loopback. */
  const DEAD = "127.0.0.1:1";

  /** A stand-in manager answering ListNetworks (marked stale when `stale` is given) and refusing creates as a store without quorum does. */
  async function standIn(o: { stale?: string; header?: boolean } = {}): Promise<{ address: string; calls: string[] }> {
    const server = new grpc.Server();
    const calls: string[] = [];
    server.addService(ClusterServiceDef, {
      ListNetworks: (call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<object>) => {
        calls.push("listNetworks");
        const md = new grpc.Metadata();
        if (o.stale) md.set(STALE_METADATA, o.stale);
        if (o.header) call.sendMetadata(md);
        callback(null, { networks: [] }, o.header ? undefined : md);
      },
      CreateNetwork: (_call: unknown, callback: grpc.sendUnaryData<object>) => {
        calls.push("createNetwork");
        callback({ code: grpc.status.UNAVAILABLE, details: "no etcd quorum: 2 of 3 members unreachable" });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    servers.push(server);
    return { address: `127.0.0.1:${port}`, calls };
  }

  const target = (addresses: string[]) => ({ address: addresses[0]!, addresses, credentials: "insecure" as const });

  it("moves on from a manager it cannot reach, and stays with the one that answered", async () => {
    const [a, b] = [await standIn(), await standIn()];
    await withConnection(target([DEAD, a.address, b.address]), async (conn) => {
      // side by side: both move on from the dead one to the same next one
      await Promise.all([conn.call("listNetworks", {}), conn.call("listNetworks", {})]);
      await conn.call("listNetworks", {});
      expect(conn.address).toBe(a.address);
    });
    expect(a.calls).toEqual(["listNetworks", "listNetworks", "listNetworks"]);
    expect(b.calls).toEqual([]);
  });

  it("finds a manager that takes a connection for a stream", async () => {
    const a = await standIn();
    await withConnection(target([DEAD, "127.0.0.1:2", a.address]), async (conn) => {
      await conn.reachable();
      expect(conn.address).toBe(a.address);
    });
    await withConnection(target([DEAD]), async (conn) => {
      await conn.reachable();
      expect(conn.address).toBe(DEAD);
    });
  });

  it("passes a manager's own UNAVAILABLE through: a change is not made again elsewhere", async () => {
    const [a, b] = [await standIn(), await standIn()];
    const failed = withConnection(target([a.address, b.address]), (conn) => conn.call("createNetwork", { spec: { name: "n" } }));
    await expect(failed).rejects.toThrow(new CommandFailed("no etcd quorum: 2 of 3 members unreachable"));
    expect([a.calls, b.calls]).toEqual([["createNetwork"], []]);
  });

  it("names every manager when none can be reached", async () => {
    const failed = withConnection(target([DEAD, "127.0.0.1:2"]), (conn) => conn.call("listNetworks", {}));
    await expect(failed).rejects.toThrow(/^cannot reach any vipmesh manager \(127\.0\.0\.1:1: connect ECONNREFUSED [^;]*; 127\.0\.0\.1:2: connect ECONNREFUSED .*\); are they running\?/);
  });

  it("warns once per reason when a read is answered from a stale cache, in headers or trailers", async () => {
    for (const header of [false, true]) {
      const a = await standIn({ stale: "the manager cannot reach etcd's quorum", header });
      const lines: string[] = [];
      await withConnection(target([a.address]), async (conn) => {
        await conn.call("listNetworks", {});
        await conn.call("listNetworks", {});
      }, { warn: (line) => lines.push(line) });
      expect(lines).toEqual(["warning: the manager cannot reach etcd's quorum; this may be out of date\n"]);
    }
  });
});
