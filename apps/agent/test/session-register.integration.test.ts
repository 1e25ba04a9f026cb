// The agent's session says its dataplane when it registers, and ends for
// good when told its node was removed, against a stand-in dispatcher on
// 127.0.0.1:0 that records what Register got.
// Needs no root: only files in a temp dir.

import * as grpc from "@grpc/grpc-js";
import { DispatcherServiceDef, RECONNECT_MIN_BACKOFF_MS, toStatus } from "@vipmesh/api";
import { nodeRemoved } from "@vipmesh/core";
import { tempDir } from "@vipmesh/testing";
import { existsSync, writeFileSync } from "node:fs";
import { once } from "node:events";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ManagerSession, type SessionOptions } from "../src/session/session.ts";

let server: grpc.Server | undefined;
let session: ManagerSession | undefined;
let dir: ReturnType<typeof tempDir> | undefined;

afterEach(() => {
  session?.stop();
  server?.forceShutdown();
  dir?.remove();
});

type Register = (call: { request: Record<string, unknown> }, callback: grpc.sendUnaryData<object>) => void;
type Session = (call: grpc.ServerDuplexStream<unknown, unknown>) => void;

/** A session of node "n1" (its node-id file written) with `options`, started against a stand-in dispatcher. */
async function sessionWith(register: Register, openSession: Session, options: Partial<SessionOptions> = {}): Promise<ManagerSession> {
  dir = tempDir("vipmesh-session-register-");
  writeFileSync(join(dir.path, "node-id"), "n1\n");
  server = new grpc.Server();
  server.addService(DispatcherServiceDef, { Register: register, Session: openSession });
  const port = await new Promise<number>((resolve, reject) =>
    server!.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  session = new ManagerSession({ managers: [`127.0.0.1:${port}`], credentials: "insecure", hostname: "node1", advertiseAddr: "192.0.2.1", stateDir: dir.path, log: () => {}, ...options });
  return session;
}

const registerAs: Register = (_call, callback) => callback(null, { nodeId: "n1" });
const holdSession: Session = (call) => call.on("end", () => call.end());

/** The Register request a session with `options` sends. */
async function registered(options: Partial<SessionOptions> = {}): Promise<Record<string, unknown>> {
  let got: (req: Record<string, unknown>) => void;
  const request = new Promise<Record<string, unknown>>((resolve) => (got = resolve));
  const s = await sessionWith((call, callback) => (got(call.request), registerAs(call, callback)), holdSession, options);
  s.start();
  return request;
}

describe("the session's Register", () => {
  it("says nftables by default", async () => {
    expect(await registered()).toMatchObject({ hostname: "node1", addr: "192.0.2.1", dataplane: "nftables" });
  });

  it("says the dataplane it was given", async () => {
    expect(await registered({ dataplane: "ipvs" })).toMatchObject({ dataplane: "ipvs" });
  });
});

describe("a removed node's session", () => {
  /** Starts `s`; resolves with what it said when told it was removed, once its node-id file is gone. */
  async function removal(s: ManagerSession): Promise<string> {
    const removed = once(s, "removed");
    s.start();
    const [why] = (await removed) as [string];
    expect(existsSync(join(dir!.path, "node-id"))).toBe(false);
    return why;
  }

  it("refused at Register as removed: says why, forgets its node ID, and never registers again", async () => {
    let registrations = 0;
    const s = await sessionWith((_call, callback) => (registrations++, callback(toStatus(nodeRemoved("n1")))), holdSession);
    expect(await removal(s)).toBe(nodeRemoved("n1").message);
    // a retry would come within reconnectDelayMs(0), 100 ms at most: there is none in 5 times that
    await new Promise((r) => setTimeout(r, 5 * RECONNECT_MIN_BACKOFF_MS));
    expect(registrations).toBe(1);
  });

  it("ended by the manager as removed: the same", async () => {
    let registrations = 0;
    const endAsRemoved: Session = (call) => call.on("data", () => call.emit("error", toStatus(nodeRemoved("n1"))));
    const s = await sessionWith((call, callback) => (registrations++, registerAs(call, callback)), endAsRemoved);
    expect(await removal(s)).toBe(nodeRemoved("n1").message);
    await new Promise((r) => setTimeout(r, 5 * RECONNECT_MIN_BACKOFF_MS));
    expect(registrations).toBe(1);
  });
});
