// JoinManager: a new manager of a cluster on etcd gets its etcd client
// certificate, the store key and the etcd endpoints with the manager token.
// The CA service on a real TLS gRPC server with the manager's interceptor, the
// CA in an in-memory store as managers on etcd keep it; the client is the one
// `vipmesh manager --join` calls.

import * as grpc from "@grpc/grpc-js";
import { CaServiceDef, call, caClient, serverCredentials } from "@vipmesh/api";
import { formatToken, parseToken } from "@vipmesh/pki";
import { ClusterCa, newKeyAndCsr } from "@vipmesh/pki/signing";
import { tempDir } from "@vipmesh/testing";
import { execFileSync } from "node:child_process";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { authInterceptor } from "../src/security/authz.ts";
import { CertificateAuthority, type JoinRate, type ManagerJoinSecrets } from "../src/security/certificate-authority.ts";
import { joinAsManager } from "../src/security/manager-join.ts";
import { caHandlers } from "../src/server.ts";
import { ClusterStore } from "../src/store/cluster-store.ts";
import { failure } from "./harness.ts";

const SECRETS: ManagerJoinSecrets = { storeKey: Buffer.alloc(32, 7), etcdEndpoints: ["https://10.9.0.1:2379", "https://10.9.0.2:2379"] };

interface CaServer {
  address: string;
  ca: CertificateAuthority;
  token(role: "worker" | "manager"): Promise<string>;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const dir = () => {
  const d = tempDir("vipmesh-join-manager-");
  cleanups.push(d.remove);
  return d.path;
};

/** The CA service of a manager on etcd (or, with no `managerJoin`, on SQLite) on 127.0.0.1. */
async function startCaServer(options: { managerJoin?: ManagerJoinSecrets; joinRate?: JoinRate } = {}): Promise<CaServer> {
  const caDir = dir();
  await ClusterCa.create(caDir);
  const dataDir = dir();
  const store = await ClusterStore.openSqlite(null);
  const ca = await CertificateAuthority.open(dataDir, store, { source: { in: "store", importFrom: caDir }, ...options });
  const identity = await ca.localIdentities(dataDir);
  const server = new grpc.Server({ interceptors: [authInterceptor(ca)] });
  server.addService(CaServiceDef, caHandlers(ca));
  const port = await new Promise<number>((resolve, reject) => server.bindAsync("127.0.0.1:0", serverCredentials(identity), (err, p) => (err ? reject(err) : resolve(p))));
  cleanups.push(() => {
    ca.stop();
    server.forceShutdown();
  });
  return { address: `127.0.0.1:${port}`, ca, token: (role) => ca.joinToken(role, false) };
}

/** JoinManager as a client with only the CA (no certificate) calls it. */
async function joinManagerCall(s: CaServer, token: string) {
  const client = caClient(s.address, { ca: s.ca.ca.certPem });
  cleanups.push(() => client.close());
  return call(client, "joinManager", { token, etcdCsrPem: (await newKeyAndCsr()).csrPem });
}

describe("JoinManager", () => {
  it("gives a manager token's holder an etcd client certificate for its own key, the store key and the endpoints", async () => {
    const s = await startCaServer({ managerJoin: SECRETS });
    const dataDir = join(dir(), "new-manager");
    const joined = await joinAsManager(s.address, await s.token("manager"), dataDir);
    expect(joined).toEqual({ etcdTlsDir: join(dataDir, "etcd-client"), storeKeyFile: join(dataDir, "store.key"), etcdEndpoints: SECRETS.etcdEndpoints });

    expect(readFileSync(joined.storeKeyFile, "utf8")).toBe(`${SECRETS.storeKey.toString("hex")}\n`);
    for (const f of [joined.storeKeyFile, join(joined.etcdTlsDir, "key.pem")]) expect(statSync(f).mode & 0o777, f).toBe(0o600);
    const cert = new X509Certificate(readFileSync(join(joined.etcdTlsDir, "cert.pem")));
    expect(cert.subject.split("\n")).toEqual(["CN=vipmesh-manager", "OU=etcd", `O=${s.ca.ca.clusterId}`]);
    expect(cert.keyUsage).toEqual(["1.3.6.1.5.5.7.3.2"]); // clientAuth only
    expect(cert.checkPrivateKey(createPrivateKey(readFileSync(join(joined.etcdTlsDir, "key.pem"))))).toBe(true);
    expect(readFileSync(join(joined.etcdTlsDir, "ca.pem"), "utf8")).toBe(s.ca.ca.certPem);
    const verified = execFileSync("openssl", ["verify", "-purpose", "sslclient", "-CAfile", join(joined.etcdTlsDir, "ca.pem"), join(joined.etcdTlsDir, "cert.pem")], { encoding: "utf8" });
    expect(verified).toContain(": OK");

    // joining again (a restart with --join still given) keeps the store key and makes a new etcd key
    const before = readFileSync(join(joined.etcdTlsDir, "key.pem"), "utf8");
    await joinAsManager(s.address, await s.token("manager"), dataDir);
    expect(readFileSync(join(joined.etcdTlsDir, "key.pem"), "utf8")).not.toBe(before);
  });

  it("refuses a worker token (PERMISSION_DENIED), a wrong one (INVALID_ARGUMENT), and gives nothing", async () => {
    const s = await startCaServer({ managerJoin: SECRETS });
    const worker = await failure(joinManagerCall(s, await s.token("worker")));
    expect(worker).toEqual({ code: "PERMISSION_DENIED", details: "a worker token joins a node, not a manager: ask for the manager token with `vipmesh join-token manager`" });
    const wrong = formatToken({ caDigest: parseToken(await s.token("manager")).caDigest, secret: "0".repeat(25) });
    expect(await failure(joinManagerCall(s, wrong))).toMatchObject({ code: "INVALID_ARGUMENT", details: expect.stringContaining("rotated") });
    expect((await failure(joinManagerCall(s, "VMTKN-1-x-y"))).code).toBe("INVALID_ARGUMENT");

    const dataDir = join(dir(), "refused");
    await expect(joinAsManager(s.address, await s.token("worker"), dataDir)).rejects.toMatchObject({ details: expect.stringContaining("a worker token joins a node") });
    expect(existsSync(dataDir)).toBe(false);
  });

  it("a manager on SQLite has nothing to share: FAILED_PRECONDITION", async () => {
    const s = await startCaServer();
    expect(await failure(joinManagerCall(s, await s.token("manager")))).toEqual({
      code: "FAILED_PRECONDITION",
      details: "this manager keeps the cluster in SQLite, which one manager alone uses: more managers join managers on etcd (--store etcd)",
    });
  });

  it("counts with Join's limit on the manager token from one address", async () => {
    const s = await startCaServer({ managerJoin: SECRETS, joinRate: { count: 2, windowMs: 60_000 } });
    const token = await s.token("manager");
    await joinManagerCall(s, token);
    const client = caClient(s.address, { ca: s.ca.ca.certPem });
    cleanups.push(() => client.close());
    await call(client, "join", { token, csrPem: (await newKeyAndCsr()).csrPem });
    expect(await failure(joinManagerCall(s, token))).toMatchObject({ code: "RESOURCE_EXHAUSTED", details: expect.stringContaining("too many joins with the manager token from 127.0.0.1") });
  });

  it("the client trusts only the CA its token names, and keeps a data dir of another cluster as it is", async () => {
    const s = await startCaServer({ managerJoin: SECRETS });
    const other = await startCaServer({ managerJoin: { ...SECRETS, storeKey: Buffer.alloc(32, 9) } });
    const dataDir = dir();
    await expect(joinAsManager(s.address, await other.token("manager"), dataDir)).rejects.toThrow(
      `the manager at ${s.address} has another CA than the join token names: a token of another cluster, or not the manager you meant`,
    );
    await joinAsManager(other.address, await other.token("manager"), dataDir);
    const kept = readFileSync(join(dataDir, "store.key"), "utf8");
    await expect(joinAsManager(s.address, await s.token("manager"), dataDir)).rejects.toThrow(`${dataDir} holds the store key or etcd identity of another cluster`);
    expect(readFileSync(join(dataDir, "store.key"), "utf8")).toBe(kept);
  });
});
