// Who may join and call what: join tokens, mutual TLS with the cluster's CA,
// roles, revocation of removed nodes, renewal without a token, and limits.
// A real manager on a real TLS socket; every refusal has its status and a
// message, and issues or changes nothing.

import {
  call,
  caClient,
  clusterClient,
  credentialsFromDir,
  dispatcherClient,
  IdentitySource,
  joinCluster,
  JoinError,
  NodeIdentity,
  type wire,
} from "@vipmesh/api";
import { formatToken, identityOfPem, parseToken, validityOf } from "@vipmesh/pki";
import { ClusterCa, newKeyAndCsr } from "@vipmesh/pki/signing";
import { tempDir, waitFor } from "@vipmesh/testing";
import { statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { everything, failure, type Harness, startHarness } from "./harness.ts";

let h: Harness;
beforeEach(async (ctx) => {
  // the overlay keys' tests rotate every half second
  h = await startHarness(ctx.task.suite?.name === "overlay keys" ? { keyRotationMs: 500 } : {});
});
afterEach(async () => {
  await h.close();
});

const nodeCredentials = (id: NodeIdentity) => ({ identity: id.source });
const register = (id: NodeIdentity, hostname: string, addr: string) =>
  call(dispatcherClient(h.address, nodeCredentials(id)), "register", { hostname, addr });

describe("the manager's files", () => {
  it("keep the token secrets and overlay keys from other users: the database and its journal are 0600", () => {
    for (const f of ["vipmesh.db", "vipmesh.db-wal"]) expect(statSync(join(h.dataDir, f)).mode & 0o777, f).toBe(0o600);
  });
});

describe("joining", () => {
  it("a worker token gives a worker certificate for a new node ID; a manager token a manager's", async () => {
    const worker = await NodeIdentity.obtain({ manager: h.address, token: h.token });
    expect(identityOfPem(worker.source.identity.certPem)).toMatchObject({ id: worker.nodeId, role: "worker" });
    const { notBefore, notAfter } = validityOf(worker.source.identity.certPem);
    expect(Math.round((notAfter - notBefore) / 86400_000)).toBe(90);
    const managerToken = (await call(h.client, "getJoinToken", { role: "manager" })).token;
    expect(managerToken).not.toBe(h.token);
    const manager = await NodeIdentity.obtain({ manager: h.address, token: managerToken });
    expect(identityOfPem(manager.source.identity.certPem)?.role).toBe("manager");
    // a manager-role certificate may run the cluster API
    const asManager = clusterClient(h.address, nodeCredentials(manager));
    expect((await call(asManager, "listNetworks", {})).networks.length).toBeGreaterThan(0);
    asManager.close();
  });

  it("with a wrong or rotated token is refused with INVALID_ARGUMENT and no certificate", async () => {
    const anonymous = caClient(h.address, { ca: (await call(caClient(h.address, "unverified"), "getRootCa", {})).caPem });
    const { csrPem } = await newKeyAndCsr();
    const digest = parseToken(h.token).caDigest;
    const wrong = formatToken({ caDigest: digest, secret: "0".repeat(25) });
    const f1 = await failure(call(anonymous, "join", { token: wrong, csrPem }));
    expect(f1).toMatchObject({ code: "INVALID_ARGUMENT" });
    expect(f1.details).toContain("rotated");
    expect((await failure(call(anonymous, "join", { token: "SWMTKN-1-x-y", csrPem }))).code).toBe("INVALID_ARGUMENT");

    const joined = await NodeIdentity.obtain({ manager: h.address, token: h.token });
    const rotated = (await call(h.client, "getJoinToken", { role: "worker", rotate: true })).token;
    expect(rotated).not.toBe(h.token);
    const before = await everything(h);
    const f2 = await failure(call(anonymous, "join", { token: h.token, csrPem }));
    expect(f2.code).toBe("INVALID_ARGUMENT");
    // nothing was issued or stored; the rotated token works; nodes joined with the old one still register
    expect(await everything(h)).toEqual(before);
    await NodeIdentity.obtain({ manager: h.address, token: rotated });
    expect((await register(joined, "node-old-token", "192.0.2.90")).nodeId).toBe(joined.nodeId);
    anonymous.close();
  });

  it("a token naming another CA is refused by the joining node before it sends the token", async () => {
    const dir = tempDir();
    try {
      const other = await ClusterCa.loadOrCreate(dir.path);
      const foreignToken = formatToken({ caDigest: other.digest, secret: parseToken(h.token).secret });
      await expect(joinCluster(h.address, foreignToken)).rejects.toThrow(JoinError);
      await expect(joinCluster(h.address, foreignToken)).rejects.toThrow(/another CA/);
    } finally {
      dir.remove();
    }
  });
});

describe("mutual TLS", () => {
  it("a call without a client certificate is refused with UNAUTHENTICATED", async () => {
    const ca = (await call(caClient(h.address, "unverified"), "getRootCa", {})).caPem;
    const noCert = clusterClient(h.address, { ca });
    const f = await failure(call(noCert, "listNodes", {}));
    expect(f.code).toBe("UNAUTHENTICATED");
    expect(f.details).toContain("client certificate");
    expect((await failure(call(dispatcherClient(h.address, { ca }), "register", { hostname: "x", addr: "192.0.2.9" }))).code).toBe("UNAUTHENTICATED");
    noCert.close();
  });

  it("a certificate from a foreign CA is refused", async () => {
    const dir = tempDir();
    try {
      const other = await ClusterCa.loadOrCreate(dir.path);
      const foreign = await other.issue({ id: "admin", role: "admin" }, 86400_000);
      // trusting our CA for the server, presenting the foreign admin certificate
      const ours = (await call(caClient(h.address, "unverified"), "getRootCa", {})).caPem;
      const client = clusterClient(h.address, { identity: new IdentitySource({ ...foreign, caPem: ours }) });
      expect((await failure(call(client, "listNodes", {}))).code).toBe("UNAUTHENTICATED");
      client.close();
    } finally {
      dir.remove();
    }
  });

  it("a client does not talk to a server whose certificate is not of its cluster, nor to a plaintext one", async () => {
    const dir = tempDir();
    try {
      const other = await ClusterCa.loadOrCreate(dir.path);
      const admin = credentialsFromDir(h.manager.adminTlsDir!);
      const wrongCa = clusterClient(h.address, { ca: other.certPem });
      expect((await failure(call(wrongCa, "listNodes", {}))).code).toBe("UNAVAILABLE");
      wrongCa.close();
      const plain = clusterClient(h.address, "insecure");
      expect((await failure(call(plain, "listNodes", {}))).code).toBe("UNAVAILABLE");
      plain.close();
      expect((await call(clusterClient(h.address, admin), "listNodes", {})).nodes).toEqual([]);
    } finally {
      dir.remove();
    }
  });

  it("a worker calling a manager API gets PERMISSION_DENIED, and a read-only certificate may only read", async () => {
    const agent = await h.addAgent("node1");
    const asWorker = clusterClient(h.address, nodeCredentials(agent.identity!));
    const f = await failure(call(asWorker, "listNodes", {}));
    expect(f.code).toBe("PERMISSION_DENIED");
    expect(f.details).toContain("worker");
    expect((await failure(call(asWorker, "getJoinToken", { role: "worker" }))).code).toBe("PERMISSION_DENIED");
    asWorker.close();

    const readonly = clusterClient(h.address, credentialsFromDir(h.manager.readonlyTlsDir!));
    expect((await call(readonly, "listNodes", {})).nodes.map((n) => n.description?.hostname)).toEqual(["node1"]);
    const before = await everything(h);
    expect((await failure(call(readonly, "createNetwork", { spec: { name: "x" } }))).code).toBe("PERMISSION_DENIED");
    expect((await failure(call(readonly, "getJoinToken", { role: "manager" }))).code).toBe("PERMISSION_DENIED");
    expect(await everything(h)).toEqual(before);
    // admin and read-only users are no nodes
    expect((await failure(call(dispatcherClient(h.address, credentialsFromDir(h.manager.adminTlsDir!)), "register", { hostname: "a", addr: "192.0.2.7" }))).code).toBe("PERMISSION_DENIED");
    readonly.close();
  });

  it("a node is who its certificate says: a session cannot be opened as another node", async () => {
    const a = await h.addAgent("node1");
    const b = await h.addAgent("node2");
    const stream = dispatcherClient(h.address, nodeCredentials(b.identity!)).session();
    const error = new Promise<{ code: number; details: string }>((resolve) => stream.on("error", resolve));
    stream.write({ open: { nodeId: a.nodeId } });
    const e = await error;
    expect(e.code).toBe(7); // PERMISSION_DENIED
    expect(e.details).toContain(b.nodeId);
  });

  it("a removed node's certificate is refused with PERMISSION_DENIED from then on", async () => {
    const agent = await h.addAgent("node1");
    const closed = new Promise<Error | undefined>((resolve) => agent.once("closed", resolve));
    await call(h.client, "removeNode", { node: agent.nodeId, force: true });
    expect((await closed)?.message).toContain("removed"); // its open session ends too
    agent.stop();
    const f = await failure(register(agent.identity!, "node1", "192.0.2.60"));
    expect(f.code).toBe("PERMISSION_DENIED");
    expect(f.details).toContain("removed");
    // renewing does not get it back in
    await expect(agent.identity!.renew()).rejects.toThrow(/removed/);
    // still refused after a manager restart
    await h.restart();
    expect((await failure(register(agent.identity!, "node1", "192.0.2.60"))).code).toBe("PERMISSION_DENIED");
  });

  it("a failed removal revokes nothing", async () => {
    const agent = await h.addAgent("node1");
    expect((await failure(call(h.client, "removeNode", { node: agent.nodeId }))).code).toBe("FAILED_PRECONDITION");
    expect((await register(agent.identity!, "node1", agent.options.addr)).nodeId).toBe(agent.nodeId);
  });
});

describe("renewal", () => {
  it("gives a new certificate for a new key, same node and role, without a token", async () => {
    const identity = await NodeIdentity.obtain({ manager: h.address, token: h.token });
    const before = identity.source.identity;
    await identity.renew();
    const after = identity.source.identity;
    expect(after.keyPem).not.toBe(before.keyPem);
    expect(after.certPem).not.toBe(before.certPem);
    expect(identityOfPem(after.certPem)).toEqual(identityOfPem(before.certPem));
    expect((await register(identity, "renewed", "192.0.2.70")).nodeId).toBe(identity.nodeId);
  });

  it("waits for its moment: a 90-day certificate is not renewed in its first seconds (setTimeout's 24.8-day limit)", async () => {
    const identity = await NodeIdentity.obtain({ manager: h.address, token: h.token });
    const first = identity.source.identity.certPem;
    identity.startRenewal();
    try {
      await new Promise((r) => setTimeout(r, 1500));
      expect(identity.source.identity.certPem).toBe(first);
    } finally {
      identity.stop();
    }
  });

  it("keeps a running session: the agent's certificate changes under it", async () => {
    const agent = await h.addAgent("node1");
    await agent.identity!.renew();
    await call(h.client, "createNetwork", { spec: { name: "after-renewal" } });
    const net = (await call(h.client, "inspectNetwork", { network: "after-renewal" })).network!;
    expect(net.spec?.name).toBe("after-renewal");
    expect((await call(h.client, "listNodes", {})).nodes[0]?.status?.state).toBe("ready");
  });
});

describe("limits", () => {
  it("a node registering more than 3 times in 8 s is told to wait (RESOURCE_EXHAUSTED)", async () => {
    const id = await NodeIdentity.obtain({ manager: h.address, token: h.token });
    for (let i = 0; i < 3; i++) await register(id, "busy", "192.0.2.80");
    const f = await failure(register(id, "busy", "192.0.2.80"));
    expect(f.code).toBe("RESOURCE_EXHAUSTED");
    expect(f.details).toContain("3 times in 8 s");
  });

  it("a request over 4 MiB is refused before any handler sees it", async () => {
    const before = await everything(h);
    const f = await failure(call(h.client, "createNetwork", { spec: { name: "big", labels: { x: "y".repeat(5 * 1024 * 1024) } } }));
    expect(f.code).toBe("RESOURCE_EXHAUSTED");
    expect(await everything(h)).toEqual(before);
  });
});

describe("overlay keys", () => {
  type Keys = { ids: number[]; tx: number };
  const keysOf = (a: wire.Assignment): Keys | undefined =>
    a.encryption ? { ids: a.encryption.keys.map((k) => k.id), tx: a.encryption.txKeyId } : undefined;

  it("go only to nodes with an encrypted network, and rotate in three steps, each applied by every node before the next", async () => {
    const agents = await Promise.all(["node1", "node2", "node3"].map((n) => h.addAgent(n)));
    const seen = new Map<string, Keys[]>(agents.map((a) => [a.nodeId, []]));
    const secrets = new Set<string>();
    for (const a of agents) {
      a.on("assignment", (m) => {
        const k = keysOf(m);
        if (k) seen.get(a.nodeId)!.push(k);
        for (const key of m.encryption?.keys ?? []) {
          expect(key.secret.length).toBe(36);
          secrets.add(Buffer.from(key.secret).toString("hex"));
        }
      });
    }
    await call(h.client, "createNetwork", { spec: { name: "secret", options: { encrypted: "" } } });
    await call(h.client, "createService", {
      spec: { annotations: { name: "vault" }, taskTemplate: { container: { command: ["x"] } }, replicated: { replicas: 2 }, networks: [{ target: "secret" }] },
    });
    await waitFor("two nodes hold the network", () => agents.filter((a) => [...a.view.networks.values()].some((n) => n.encrypted)).length === 2);
    const [held, other] = [agents.filter((a) => [...a.view.networks.values()].some((n) => n.encrypted)), agents.find((a) => ![...a.view.networks.values()].some((n) => n.encrypted))!];

    // one node slow to apply: the rotation waits for it at every step
    const slow = held[0]!;
    slow.holdAcks();
    await waitFor("a rotation's first step", () => seen.get(slow.nodeId)!.some((k) => k.ids.length === 2));
    const atHold = seen.get(held[1]!.nodeId)!.length;
    await new Promise((r) => setTimeout(r, 300));
    expect(seen.get(held[1]!.nodeId)!.length).toBe(atHold); // no second step while one node has not applied the first
    slow.releaseAcks();
    await waitFor("a whole rotation", () => held.every((a) => seen.get(a.nodeId)!.filter((k) => k.ids.length === 1).length >= 2));

    for (const a of held) {
      const steps = seen.get(a.nodeId)!;
      const first = steps[0]!;
      expect(first.ids).toEqual([first.tx]);
      const [add, send, drop] = steps.slice(1, 4);
      const next = add!.ids.find((id) => id !== first.tx)!;
      expect(add).toEqual({ ids: [first.tx, next], tx: first.tx });
      expect(send).toEqual({ ids: [first.tx, next], tx: next });
      expect(drop).toEqual({ ids: [next], tx: next });
    }
    expect(seen.get(other.nodeId)).toEqual([]);
    expect(secrets.size).toBeGreaterThanOrEqual(2);
  });
});
