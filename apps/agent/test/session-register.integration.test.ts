// The agent's session says its dataplane when it registers, against a
// stand-in dispatcher on 127.0.0.1:0 that records what Register got.
// Needs no root: only files in a temp dir.

import * as grpc from "@grpc/grpc-js";
import { DispatcherServiceDef } from "@vipmesh/api";
import { tempDir } from "@vipmesh/testing";
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

/** The Register request a session with `options` sends. */
async function registered(options: Partial<SessionOptions> = {}): Promise<Record<string, unknown>> {
  dir = tempDir("vipmesh-session-register-");
  server = new grpc.Server();
  let got: (req: Record<string, unknown>) => void;
  const request = new Promise<Record<string, unknown>>((resolve) => (got = resolve));
  server.addService(DispatcherServiceDef, {
    Register: (call: { request: Record<string, unknown> }, callback: grpc.sendUnaryData<object>) => {
      got(call.request);
      callback(null, { nodeId: "n1" });
    },
    Session: (call: grpc.ServerDuplexStream<unknown, unknown>) => call.on("end", () => call.end()),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server!.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  session = new ManagerSession({ manager: `127.0.0.1:${port}`, credentials: "insecure", hostname: "node1", advertiseAddr: "192.0.2.1", stateDir: dir.path, log: () => {}, ...options });
  session.start();
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
