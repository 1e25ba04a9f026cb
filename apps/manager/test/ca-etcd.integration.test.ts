// The cluster CA with managers on etcd, against a real etcd run as the docs
// say: TLS from `ca init`/`ca issue`, client certificates required, etcd's
// auth on with the users root and vipmesh-manager. Managers share the CA
// through the store (imported once, its key sealed there and on no disk);
// the etcd certificate JoinManager gives is let in; a node's certificate,
// signed by the same CA, is not.

import { connectEtcd, type EtcdMember, readEtcdTls, startEtcd } from "@vipmesh/etcd";
import { ClusterCa, ETCD_ADMIN_USER, ETCD_MANAGER_USER, issueEtcdCertificate, newKeyAndCsr } from "@vipmesh/pki/signing";
import { tempDir } from "@vipmesh/testing";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { CA_SETTINGS, CertificateAuthority } from "../src/security/certificate-authority.ts";
import { ClusterStore } from "../src/store/cluster-store.ts";
import { EtcdBackend } from "../src/store/etcd.ts";
import { newStoreKey } from "../src/store/secret-box.ts";
import { freePort } from "@vipmesh/testing";
import { etcdDescribe } from "@vipmesh/testing/etcd";

etcdDescribe("the cluster CA on etcd with TLS and etcd's auth", () => {
  const dir = tempDir("vipmesh-ca-etcd-");
  const caDir = join(dir.path, "ca");
  const storeKey = newStoreKey();
  let member: EtcdMember | undefined;
  const stores: ClusterStore[] = [];
  const cas: CertificateAuthority[] = [];

  /** etcdctl with one of the identities `ca issue` wrote. */
  const etcdctl = (who: string, ...args: string[]) =>
    execFileSync("etcdctl", ["--endpoints", member!.clientUrl, "--cacert", join(caDir, "ca.pem"), "--cert", join(dir.path, who, "cert.pem"), "--key", join(dir.path, who, "key.pem"), ...args], {
      encoding: "utf8",
      env: { ...process.env, ETCDCTL_API: "3" },
      stdio: "pipe",
    });

  /** A manager's store on the etcd, as the manager's etcd client identity. */
  const openStore = async () => {
    const store = await ClusterStore.open(new EtcdBackend({ endpoints: [member!.clientUrl], tls: readEtcdTls(join(dir.path, "manager")), storeKey }));
    stores.push(store);
    return store;
  };

  beforeAll(async () => {
    await ClusterCa.create(caDir);
    await issueEtcdCertificate(caDir, { name: "e1", usage: "peer", ips: ["127.0.0.1"] }, join(dir.path, "e1"));
    await issueEtcdCertificate(caDir, { name: "admin", usage: "client", cn: ETCD_ADMIN_USER }, join(dir.path, "root"));
    await issueEtcdCertificate(caDir, { name: "manager", usage: "client", cn: ETCD_MANAGER_USER }, join(dir.path, "manager"));
    const tls = { caFile: join(caDir, "ca.pem"), certFile: join(dir.path, "e1", "cert.pem"), keyFile: join(dir.path, "e1", "key.pem") };
    member = startEtcd({ name: "e1", dir: join(dir.path, "etcd"), host: "127.0.0.1", clientPort: await freePort(), peerPort: await freePort(), tls, heartbeatMs: 100, electionMs: 1000 });
    await member.ready();
    etcdctl("root", "user", "add", ETCD_ADMIN_USER, "--no-password");
    etcdctl("root", "user", "grant-role", ETCD_ADMIN_USER, "root");
    etcdctl("root", "role", "add", "vipmesh");
    etcdctl("root", "role", "grant-permission", "vipmesh", "--prefix=true", "readwrite", "/vipmesh/");
    etcdctl("root", "user", "add", ETCD_MANAGER_USER, "--no-password");
    etcdctl("root", "user", "grant-role", ETCD_MANAGER_USER, "vipmesh");
    etcdctl("root", "auth", "enable");
  });

  afterAll(async () => {
    for (const ca of cas) ca.stop();
    for (const s of stores) await s.close();
    await member?.stop();
    dir.remove();
  });

  it("managers starting at once import the CA once; a later one finds it; its key is sealed in etcd and on no manager's disk", async () => {
    const dataDirs = ["m1", "m2", "m3"].map((m) => join(dir.path, m));
    const source = { in: "store" as const, importFrom: caDir };
    const [a, b] = await Promise.all([
      openStore().then((s) => CertificateAuthority.open(dataDirs[0]!, s, { source })),
      openStore().then((s) => CertificateAuthority.open(dataDirs[1]!, s, { source })),
    ]);
    const c = await CertificateAuthority.open(dataDirs[2]!, await openStore(), { source: { in: "store" } });
    cas.push(a, b, c);
    expect(new Set([a, b, c].map((x) => x.ca.digest))).toEqual(new Set([(await ClusterCa.load(caDir)).digest]));
    expect(await Promise.all([a, b, c].map((x) => x.joinToken("worker", false)))).toEqual(Array(3).fill(await a.joinToken("worker", false)));

    const keyBody = readFileSync(join(caDir, "ca.key"), "utf8").split("\n")[1]!;
    const raw = etcdctl("root", "get", `/vipmesh/s/${CA_SETTINGS.key}`, "--print-value-only");
    expect(raw).toMatch(/^v1:/);
    expect(raw).not.toContain(keyBody);
    for (const d of dataDirs) {
      await [a, b, c][dataDirs.indexOf(d)]!.localIdentities(d);
      const files = readdirSync(d, { recursive: true }).map(String);
      expect(files.filter((f) => f.includes("ca.key")), d).toEqual([]);
      for (const f of files.filter((f) => f.endsWith(".pem"))) expect(readFileSync(join(d, f), "utf8"), f).not.toContain(keyBody);
    }
  });

  it("the certificate JoinManager gives reads the store; a node's, from the same CA, is denied", async () => {
    const ca = await CertificateAuthority.open(join(dir.path, "m4"), await openStore(), {
      source: { in: "store" },
      managerJoin: { storeKey, etcdEndpoints: [member!.clientUrl] },
    });
    cas.push(ca);
    const { keyPem, csrPem } = await newKeyAndCsr();
    const joined = await ca.joinManager(await ca.joinToken("manager", false), csrPem, "127.0.0.1");
    expect(joined.storeKey.equals(storeKey)).toBe(true);
    const asNewManager = connectEtcd({ endpoints: joined.etcdEndpoints, tls: { ca: Buffer.from(ca.ca.certPem), cert: Buffer.from(joined.etcdCertPem), key: Buffer.from(keyPem) } });
    const node = await ca.ca.issue({ id: "n0de1d", role: "worker" }, 3600_000);
    const asNode = connectEtcd({ endpoints: [member!.clientUrl], tls: { ca: Buffer.from(node.caPem), cert: Buffer.from(node.certPem), key: Buffer.from(node.keyPem) } });
    try {
      expect(JSON.parse((await asNewManager.get("/vipmesh/version").string())!)).toMatchObject({ version: expect.any(Number) });
      await expect(asNode.get("/vipmesh/version").string()).rejects.toThrow(/permission denied/);
      await expect(asNode.put("/vipmesh/version").value("{}")).rejects.toThrow(/permission denied/);
    } finally {
      asNewManager.close();
      asNode.close();
    }
  });
});
