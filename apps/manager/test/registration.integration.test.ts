// Joining and registering with bad intent or bad input (issue #20): a token
// flood is rate-limited, a node cannot take a live node's hostname, advertise
// an address no one can reach, or give itself the admin's labels. A real
// manager on a real TLS socket; every refusal has its status and a message,
// and leaves the store as it was.

import { call, caClient, dispatcherClient, NodeIdentity } from "@vipmesh/api";
import { newKeyAndCsr } from "@vipmesh/pki/signing";
import { afterEach, describe, expect, it } from "vitest";
import { DEFAULT_JOIN_RATE } from "../src/index.ts";
import { everything, failure, type Harness, serviceSpec, startHarness, waitFor, waitRunning } from "./harness.ts";

let h: Harness;
afterEach(async () => {
  await h?.close();
});

const join = () => NodeIdentity.obtain({ manager: h.address, token: h.token });
const register = (id: NodeIdentity, request: { hostname: string; addr: string; labels?: Record<string, string> }) =>
  call(dispatcherClient(h.address, { identity: id.source }), "register", request);
const readyNode = (hostname: string) =>
  waitFor(`${hostname} ready`, async () => {
    const n = (await call(h.client, "inspectNode", { node: hostname })).node!;
    return n.status?.state === "ready" ? n : undefined;
  });
const nodesNamed = async (hostname: string) => (await call(h.client, "listNodes", {})).nodes.filter((n) => n.description?.hostname === hostname);

describe("joining", () => {
  it("40 joins at once with one token from one address: 10 get a certificate, the rest RESOURCE_EXHAUSTED saying when to retry", async () => {
    h = await startHarness({ joinRate: DEFAULT_JOIN_RATE });
    const { caPem } = await call(caClient(h.address, "unverified"), "getRootCa", {});
    const anonymous = caClient(h.address, { ca: caPem });
    const csrs = await Promise.all(Array.from({ length: 40 }, () => newKeyAndCsr()));
    const before = await everything(h);
    const results = await Promise.all(csrs.map(({ csrPem }) => failure(call(anonymous, "join", { token: h.token, csrPem })).catch(() => "joined")));

    expect(results.filter((r) => r === "joined")).toHaveLength(DEFAULT_JOIN_RATE.count);
    const refused = results.filter((r) => r !== "joined") as { code: string; details: string }[];
    expect(refused).toHaveLength(30);
    for (const f of refused) {
      expect(f.code).toBe("RESOURCE_EXHAUSTED");
      expect(f.details).toMatch(/^too many joins with the worker token from 127\.0\.0\.1 \(at most 10 in 60 s, the manager's --join-rate\); try again in (59|60) s$/);
    }
    expect(await everything(h)).toEqual(before);
    // the limit is per token: the manager token still joins from the same address
    const managerToken = (await call(h.client, "getJoinToken", { role: "manager" })).token;
    expect((await call(anonymous, "join", { token: managerToken, csrPem: csrs[0]!.csrPem })).role).toBe("manager");
    anonymous.close();
  });
});

describe("registering", () => {
  it("a second node cannot take a live node's hostname (ALREADY_EXISTS); once that node is down it can, and the old record stays", async () => {
    h = await startHarness();
    const first = await h.addAgent("node1");
    const second = await join();
    const before = await everything(h);
    const f = await failure(register(second, { hostname: "node1", addr: "192.0.2.201" }));
    expect(f.code).toBe("ALREADY_EXISTS");
    expect(f.details).toBe(`node ${first.nodeId} already has hostname node1; remove it with \`vipmesh node rm\` or pick another hostname`);
    expect(await everything(h)).toEqual(before);

    first.stop();
    await waitFor("node1 down", async () => (await nodesNamed("node1"))[0]?.status?.state === "down");
    const oldRecord = (await nodesNamed("node1"))[0]!;
    expect((await h.addAgent("node1", { identity: second, addr: "192.0.2.201" })).nodeId).toBe(second.nodeId);
    const both = await nodesNamed("node1");
    expect(both.map((n) => n.id).sort()).toEqual([first.nodeId, second.nodeId].sort());
    expect(both.find((n) => n.id === first.nodeId)).toEqual(oldRecord);
    // the old node coming back is refused in turn while the new one is live
    expect((await failure(register(first.identity!, { hostname: "node1", addr: first.options.addr }))).code).toBe("ALREADY_EXISTS");
  });

  it.each([
    ["0.0.0.0", "this network"],
    ["127.0.0.1", "--allow-loopback-nodes"],
    ["224.0.0.1", "multicast"],
    ["255.255.255.255", "broadcast"],
  ])("refuses advertise address %s (INVALID_ARGUMENT: %s), and stores nothing", async (addr, what) => {
    h = await startHarness();
    const id = await join();
    const before = await everything(h);
    const f = await failure(register(id, { hostname: "odd", addr }));
    expect(f.code).toBe("INVALID_ARGUMENT");
    expect(f.details).toContain(what);
    expect(f.details).toContain("--advertise-addr");
    expect(await everything(h)).toEqual(before);
  });

  it("takes a loopback advertise address from a manager with --allow-loopback-nodes", async () => {
    h = await startHarness({ allowLoopbackNodes: true });
    await h.addAgent("local", { addr: "127.0.0.1" });
    expect((await nodesNamed("local"))[0]?.status?.addr).toBe("127.0.0.1");
  });

  it("refuses 20,000 labels of a node's own (INVALID_ARGUMENT) and stores nothing; the admin's have the same limits", async () => {
    // heartbeats far apart: n1 stays ready while a test on a busy machine compares the store
    h = await startHarness({ heartbeatPeriodMs: 10_000 });
    const id = await join();
    const before = await everything(h);
    const labels = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`label${i}`, "x"]));
    const f = await failure(register(id, { hostname: "labelled", addr: "192.0.2.210", labels }));
    expect(f).toEqual({ code: "INVALID_ARGUMENT", details: "engine labels: 20000 labels; a node may have at most 64" });
    expect(await everything(h)).toEqual(before);

    const node = (await h.addAgent("n1")).nodeId;
    const current = await readyNode("n1");
    const after = await everything(h);
    const tooMany = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`label${i}`, "x"]));
    const u = await failure(call(h.client, "updateNode", { node, version: current.version, spec: { ...current.spec, labels: tooMany } }));
    expect(u).toEqual({ code: "INVALID_ARGUMENT", details: "labels: 65 labels; a node may have at most 64" });
    expect(await everything(h)).toEqual(after);
  });

  it("keeps a node's own labels apart from the admin's: they never satisfy node.labels constraints, engine.labels ones read them", async () => {
    h = await startHarness();
    const agent = await h.addAgent("n1", { labels: { zone: "a" } });
    await h.addAgent("n2");
    let node = await readyNode("n1");
    expect(node.spec?.labels).toEqual({});
    expect(node.description?.engineLabels).toEqual({ zone: "a" });

    // the admin's label survives the node registering again with its own of the same key
    await call(h.client, "updateNode", { node: "n1", version: node.version, spec: { ...node.spec, labels: { zone: "b" } } });
    await register(agent.identity!, { hostname: "n1", addr: agent.options.addr, labels: { zone: "a", rack: "r1" } });
    node = (await call(h.client, "inspectNode", { node: "n1" })).node!;
    expect(node.spec?.labels).toEqual({ zone: "b" });
    expect(node.description?.engineLabels).toEqual({ zone: "a", rack: "r1" });

    const place = (name: string, constraint: string) =>
      call(h.client, "createService", {
        spec: serviceSpec(name, { replicated: { replicas: 1 }, taskTemplate: { container: { command: ["x"] }, placement: { constraints: [constraint] } } }),
      });
    await place("admin-zone-a", "node.labels.zone==a");
    await place("engine-zone-a", "engine.labels.zone==a");
    await place("admin-zone-b", "node.labels.zone==b");
    expect((await waitRunning(h, "engine-zone-a", 1))[0]?.nodeId).toBe(agent.nodeId);
    expect((await waitRunning(h, "admin-zone-b", 1))[0]?.nodeId).toBe(agent.nodeId);
    // no node has the admin's zone=a: its task is on no node
    const unplaced = (await call(h.client, "listTasks", { service: "admin-zone-a" })).tasks;
    expect(unplaced.map((t) => [t.nodeId, t.status?.state])).toEqual([["", "pending"]]);
  });
});
