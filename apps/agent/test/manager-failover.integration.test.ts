// An agent's session fails over between real managers: one manager on
// 127.0.0.1 is stopped, another (the same SQLite data dir, as a restarted
// manager would have it) starts on a second address the agent was given;
// the session moves there, keeps its view meanwhile, and learns the
// managers' addresses the manager sends. Needs no root.

import { call, clusterClient, type ClusterServiceClient, credentialsFromDir, NodeIdentity } from "@vipmesh/api";
import { type RunningManager, startManager } from "@vipmesh/manager";
import { freePort, tempDir, waitFor } from "@vipmesh/testing";
import { once } from "node:events";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { MANAGERS_FILE } from "../src/session/managers.ts";
import { ManagerSession } from "../src/session/session.ts";

let dir: ReturnType<typeof tempDir> | undefined;
let manager: RunningManager | undefined;
let session: ManagerSession | undefined;
let client: ClusterServiceClient | undefined;

afterEach(async () => {
  session?.stop();
  client?.close();
  await manager?.stop();
  dir?.remove();
});

/** A port of loopback free now (the kernel's pick, released at once). */

const start = (dataDir: string, address: string) => startManager({ dataDir, listen: [address], heartbeatPeriodMs: 100, restartDelayMs: 50 });

it("moves to the manager that answers when the one it had stops, keeping its view meanwhile", async () => {
  dir = tempDir("vipmesh-manager-failover-");
  const [first, second] = [`127.0.0.1:${await freePort()}`, `127.0.0.1:${await freePort()}`];
  const data = join(dir.path, "manager");
  manager = await start(data, first);
  client = clusterClient(first, credentialsFromDir(manager.adminTlsDir!));
  const token = (await call(client, "getJoinToken", { role: "worker" })).token;
  client.close();
  const identity = await NodeIdentity.obtain({ manager: [first, second], token });
  const state = join(dir.path, "state");
  mkdirSync(state);
  session = new ManagerSession({
    managers: [first, second],
    credentials: { identity: identity.source },
    nodeId: identity.nodeId,
    hostname: "node-1",
    advertiseAddr: "192.0.2.61",
    stateDir: state,
    log: () => {},
  });
  session.start();
  await once(session, "view");
  const version = session.version;
  expect(version).toBeGreaterThan(0);
  // the manager tells its address (the only manager there is)
  await waitFor("the managers kept", () => existsSync(join(state, MANAGERS_FILE)));
  expect(JSON.parse(readFileSync(join(state, MANAGERS_FILE), "utf8"))).toEqual({ managers: [first] });

  await manager.stop();
  manager = undefined;
  await new Promise((r) => setTimeout(r, 300));
  // no manager: the view stays as it was
  expect(session.version).toBe(version);

  manager = await start(data, second);
  await once(session, "open");
  client = clusterClient(second, credentialsFromDir(manager.adminTlsDir!));
  await waitFor("node-1 ready through the second manager", async () => {
    const { nodes } = await call(client!, "listNodes", {});
    return nodes.some((n) => n.id === identity.nodeId && n.status?.state === "ready");
  });
  await waitFor("the second manager's address kept", () => readFileSync(join(state, MANAGERS_FILE), "utf8").includes(second));
});
