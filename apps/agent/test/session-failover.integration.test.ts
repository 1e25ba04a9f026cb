// The agent's session moves on to the next manager when one cannot be
// reached or its session is lost, and learns the managers' addresses the
// manager sends (kept in its state dir), against stand-in dispatchers on
// 127.0.0.1. Needs no root: only files in a temp dir.

import * as grpc from "@grpc/grpc-js";
import { DispatcherServiceDef } from "@vipmesh/api";
import { tempDir, waitFor } from "@vipmesh/testing";
import { once } from "node:events";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { MANAGERS_FILE } from "../src/session/managers.ts";
import { ManagerSession } from "../src/session/session.ts";

const servers: grpc.Server[] = [];
let session: ManagerSession | undefined;
let dir: ReturnType<typeof tempDir> | undefined;

afterEach(() => {
  session?.stop();
  for (const s of servers.splice(0)) s.forceShutdown();
  dir?.remove();
});

/** Nothing listens on port 1 of loopback: a manager that cannot be reached. */
const DEAD = "127.0.0.1:1";

/** A stand-in dispatcher: counts registrations, opens sessions, and tells each the `managers` it is given later. */
async function standIn(): Promise<{ address: string; server: grpc.Server; registrations: number; managers: string[] }> {
  const server = new grpc.Server();
  const me = { address: "", server, registrations: 0, managers: [] as string[] };
  server.addService(DispatcherServiceDef, {
    Register: (_call: unknown, callback: grpc.sendUnaryData<object>) => (me.registrations++, callback(null, { nodeId: "n1" })),
    Session: (call: grpc.ServerDuplexStream<unknown, unknown>) => {
      call.once("data", () => {
        call.write({ params: { nodeId: "n1", heartbeatPeriodMs: 1000 } });
        call.write({ managers: { addrs: me.managers } });
      });
      call.on("end", () => call.end());
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  servers.push(server);
  me.address = `127.0.0.1:${port}`;
  return me;
}

it("skips a manager it cannot reach, learns the others, and moves to one of them when its session is lost", async () => {
  dir = tempDir("vipmesh-session-failover-");
  const [b, c] = [await standIn(), await standIn()];
  b.managers = [b.address, c.address, ""];
  const logs: string[] = [];
  session = new ManagerSession({ managers: [DEAD, b.address], credentials: "insecure", hostname: "node1", advertiseAddr: "192.0.2.1", stateDir: dir.path, log: (l) => logs.push(l) });
  session.start();
  await once(session, "open");
  expect(b.registrations).toBe(1);
  expect(logs.some((l) => l.startsWith(`cannot register with the manager at ${DEAD}:`))).toBe(true);
  // the list comes right after the session's parameters
  await waitFor("the managers kept", () => existsSync(join(dir!.path, MANAGERS_FILE)));
  expect(JSON.parse(readFileSync(join(dir.path, MANAGERS_FILE), "utf8"))).toEqual({ managers: [b.address, c.address] });

  // b goes away: c, which only b told of, takes the session
  b.server.forceShutdown();
  await once(session, "open");
  expect(c.registrations).toBe(1);
  expect(logs.at(-1)).toBe(`session open as node n1 with the manager at ${c.address}`);
});

it("a restarted agent dials the managers it was told of when the given one is gone", async () => {
  dir = tempDir("vipmesh-session-failover-");
  const c = await standIn();
  c.managers = [c.address];
  const first = new ManagerSession({ managers: [c.address], credentials: "insecure", hostname: "node1", advertiseAddr: "192.0.2.1", stateDir: dir.path, log: () => {} });
  first.start();
  await once(first, "open");
  await waitFor("the managers kept", () => existsSync(join(dir!.path, MANAGERS_FILE)));
  first.stop();
  session = new ManagerSession({ managers: [DEAD], credentials: "insecure", hostname: "node1", advertiseAddr: "192.0.2.1", stateDir: dir.path, log: () => {} });
  session.start();
  await once(session, "open");
  expect(c.registrations).toBe(2);
});
