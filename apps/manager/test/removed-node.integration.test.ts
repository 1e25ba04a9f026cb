// A removed node is out for good: its session ends saying so, and its node ID
// is refused from then on, across a manager restart — on a manager with
// --insecure too, where no certificate is there to revoke.

import { call, clusterClient, type ClusterServiceClient, dispatcherClient, isNodeRemoved, statusName } from "@vipmesh/api";
import { SimAgent, tempDir } from "@vipmesh/testing";
import type { ServiceError } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type RunningManager, startManager } from "../src/index.ts";
import { failure, HEARTBEAT_MS } from "./harness.ts";

let dir: ReturnType<typeof tempDir>;
let manager: RunningManager;
let client: ClusterServiceClient;
const agents: SimAgent[] = [];

async function start(): Promise<void> {
  manager = await startManager({ dataDir: dir.path, listen: ["127.0.0.1:0"], heartbeatPeriodMs: HEARTBEAT_MS, insecure: true });
  client = clusterClient(manager.addresses[0]!, "insecure");
}

async function stop(): Promise<void> {
  client.close();
  await manager.stop();
}

beforeEach(async () => {
  dir = tempDir();
  await start();
});
afterEach(async () => {
  for (const a of agents.splice(0)) a.stop();
  await stop();
  dir.remove();
});

const agent = async (hostname: string, addr: string) => {
  const a = await new SimAgent(manager.addresses[0]!, { hostname, addr }).start();
  agents.push(a);
  return a;
};

const register = (nodeId: string) => {
  const c = dispatcherClient(manager.addresses[0]!, "insecure");
  return call(c, "register", { hostname: "node1", addr: "192.0.2.201", nodeId }).finally(() => c.close());
};

describe("a removed node", () => {
  it("has its session ended with PERMISSION_DENIED, and its registration refused from then on with the store unchanged", async () => {
    const node1 = await agent("node1", "192.0.2.201");
    await agent("node2", "192.0.2.202");
    const closed = new Promise<Error | undefined>((resolve) => node1.once("closed", resolve));
    await call(client, "removeNode", { node: node1.nodeId, force: true });
    const removed = `node ${node1.nodeId} was removed from the cluster; join it again with a join token`;
    const ended = (await closed) as ServiceError;
    expect({ code: statusName(ended.code), details: ended.details, recognised: isNodeRemoved(ended) }).toEqual({
      code: "PERMISSION_DENIED",
      details: removed,
      recognised: true,
    });
    node1.stop();

    const nodes = async () => (await call(client, "listNodes", {})).nodes;
    const before = await nodes();
    expect(await failure(register(node1.nodeId))).toEqual({ code: "PERMISSION_DENIED", details: removed });
    expect(await nodes()).toEqual(before);

    // the tombstone is in the store: still refused after a restart
    await stop();
    await start();
    expect(await failure(register(node1.nodeId))).toEqual({ code: "PERMISSION_DENIED", details: removed });
    // an agent that forgot its node ID starts over as a new node
    const fresh = await agent("node1", "192.0.2.201");
    expect(fresh.nodeId).not.toBe(node1.nodeId);
  });

  it("is not tombstoned by a refused removal", async () => {
    const node1 = await agent("node1", "192.0.2.201");
    expect((await failure(call(client, "removeNode", { node: node1.nodeId }))).code).toBe("FAILED_PRECONDITION");
    expect((await register(node1.nodeId)).nodeId).toBe(node1.nodeId);
  });
});
