// The CA in the data dir (one manager) or in the store (managers on etcd),
// on an in-memory store: where the CA comes from, what goes where, and the
// join token secrets every manager shares.

import { parseToken } from "@vipmesh/pki";
import { ClusterCa } from "@vipmesh/pki/signing";
import { tempDir } from "@vipmesh/testing";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ClusterStore } from "../store/cluster-store.ts";
import { CA_SETTINGS, CertificateAuthority } from "./certificate-authority.ts";

const dirs: { remove(): void }[] = [];
const dir = (prefix: string) => {
  const d = tempDir(prefix);
  dirs.push(d);
  return d.path;
};
afterEach(() => {
  for (const d of dirs.splice(0)) d.remove();
});

/** Every file under `root`, relative. */
const filesUnder = (root: string): string[] => readdirSync(root, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name).slice(root.length + 1));

describe("the CA in the data dir (one manager)", () => {
  it("is made in <data-dir>/ca on the first start and kept", async () => {
    const dataDir = dir("vipmesh-ca-data-");
    const store = await ClusterStore.openSqlite(null);
    const ca = await CertificateAuthority.open(dataDir, store);
    expect(readFileSync(join(dataDir, "ca", "ca.pem"), "utf8")).toBe(ca.ca.certPem);
    expect((await CertificateAuthority.open(dataDir, store)).ca.digest).toBe(ca.ca.digest);
    expect(store.settings.get(CA_SETTINGS.cert)).toBeUndefined();
  });
});

describe("the CA in the store (managers on etcd)", () => {
  it("is imported from --ca-dir on the first start, and its key never written under the data dir", async () => {
    const caDir = dir("vipmesh-ca-init-");
    const made = await ClusterCa.create(caDir);
    const store = await ClusterStore.openSqlite(null);
    const dataDir = dir("vipmesh-ca-data-");
    const ca = await CertificateAuthority.open(dataDir, store, { source: { in: "store", importFrom: caDir } });
    expect(ca.ca.digest).toBe(made.digest);
    expect(store.settings.get(CA_SETTINGS.cert)).toBe(made.certPem);
    expect(store.settings.get(CA_SETTINGS.key)).toBe(readFileSync(join(caDir, "ca.key"), "utf8"));
    await ca.localIdentities(dataDir);
    ca.stop();
    expect(existsSync(join(dataDir, "ca"))).toBe(false);
    expect(filesUnder(dataDir).sort()).toEqual(["admin/ca.pem", "admin/cert.pem", "admin/key.pem", "manager/ca.pem", "manager/cert.pem", "manager/key.pem", "readonly/ca.pem", "readonly/cert.pem", "readonly/key.pem"]);
    const key = readFileSync(join(caDir, "ca.key"), "utf8");
    for (const f of filesUnder(dataDir)) expect(readFileSync(join(dataDir, f), "utf8"), f).not.toContain(key.split("\n")[1]);
  });

  it("managers started at once import it once; later ones need no --ca-dir, and sign with the same CA", async () => {
    const caDir = dir("vipmesh-ca-init-");
    await ClusterCa.create(caDir);
    const store = await ClusterStore.openSqlite(null);
    const source = { in: "store" as const, importFrom: caDir };
    const [a, b] = await Promise.all([CertificateAuthority.open(dir("m1-"), store, { source }), CertificateAuthority.open(dir("m2-"), store, { source })]);
    const c = await CertificateAuthority.open(dir("m3-"), store, { source: { in: "store" } });
    expect(new Set([a.ca.digest, b.ca.digest, c.ca.digest]).size).toBe(1);
    expect(a.ca.clusterId).toBe(c.ca.clusterId);
  });

  it("refuses to start without a CA anywhere, or with a --ca-dir of another cluster", async () => {
    const store = await ClusterStore.openSqlite(null);
    await expect(CertificateAuthority.open(dir("m1-"), store, { source: { in: "store" } })).rejects.toThrow(
      "the store holds no cluster CA yet: start the cluster's first manager with --ca-dir DIR, the directory `vipmesh ca init --dir DIR` made",
    );
    const empty = dir("vipmesh-ca-empty-");
    await expect(CertificateAuthority.open(dir("m1-"), store, { source: { in: "store", importFrom: empty } })).rejects.toThrow(`${empty} (--ca-dir) holds no cluster CA`);

    const first = dir("vipmesh-ca-first-");
    const other = dir("vipmesh-ca-other-");
    const made = await ClusterCa.create(first);
    await ClusterCa.create(other);
    await CertificateAuthority.open(dir("m1-"), store, { source: { in: "store", importFrom: first } });
    await expect(CertificateAuthority.open(dir("m2-"), store, { source: { in: "store", importFrom: other } })).rejects.toThrow(
      `the CA in ${other} (--ca-dir) is not this cluster's: the store holds cluster ${made.clusterId}'s`,
    );
    expect(store.settings.get(CA_SETTINGS.cert)).toBe(made.certPem);
  });

  it("join tokens: one secret per role for every manager; a rotation by one is the others' at once", async () => {
    const caDir = dir("vipmesh-ca-init-");
    await ClusterCa.create(caDir);
    const store = await ClusterStore.openSqlite(null);
    const a = await CertificateAuthority.open(dir("m1-"), store, { source: { in: "store", importFrom: caDir } });
    const b = await CertificateAuthority.open(dir("m2-"), store, { source: { in: "store" } });
    const worker = await a.joinToken("worker", false);
    expect(await b.joinToken("worker", false)).toBe(worker);
    expect(await b.joinToken("manager", false)).not.toBe(worker);
    const rotated = await b.joinToken("worker", true);
    expect(parseToken(rotated).secret).not.toBe(parseToken(worker).secret);
    expect(await a.joinToken("worker", false)).toBe(rotated);
    await expect(a.joinToken("admin", false)).rejects.toThrow('a join token is for "worker" or "manager", not "admin"');
  });
});
