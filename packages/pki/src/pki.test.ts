import { X509Certificate } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ClusterCa, CsrError } from "./ca.ts";
import { isUsable, readIdentity, renewalDelayMs, validityOf, writeIdentity } from "./identity.ts";
import { identityOfPem } from "./roles.ts";
import { caDigest, formatToken, newSecret, parseToken, sameSecret, TokenFormatError } from "./token.ts";
import { newKeyAndCsr } from "./x509.ts";

const dir = mkdtempSync(join(tmpdir(), "vipmesh-pki-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const DAY = 24 * 3600_000;

describe("the cluster CA", () => {
  it("is made once, with its key 0600, and loaded back the same", async () => {
    const ca = await ClusterCa.loadOrCreate(join(dir, "ca"));
    expect(statSync(join(dir, "ca", "ca.key")).mode & 0o777).toBe(0o600);
    const again = await ClusterCa.loadOrCreate(join(dir, "ca"));
    expect(again.certPem).toBe(ca.certPem);
    expect(again.clusterId).toBe(ca.clusterId);
    expect(again.digest).toBe(ca.digest);
    expect(new X509Certificate(ca.certPem).ca).toBe(true);
  });

  it("signs a node's CSR with its node ID and role, for the validity asked", async () => {
    const ca = await ClusterCa.loadOrCreate(join(dir, "ca"));
    const { csrPem, keyPem } = await newKeyAndCsr();
    const certPem = await ca.signCsr(csrPem, { id: "node123", role: "worker" }, 90 * DAY);
    expect(identityOfPem(certPem)).toEqual({ id: "node123", role: "worker", clusterId: ca.clusterId });
    const cert = new X509Certificate(certPem);
    expect(cert.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(cert.checkPrivateKey((await import("node:crypto")).createPrivateKey(keyPem))).toBe(true);
    const { notBefore, notAfter } = validityOf(certPem);
    expect(Math.round((notAfter - Date.now()) / DAY)).toBe(90);
    expect(notBefore).toBeLessThan(Date.now());
    expect(isUsable({ caPem: ca.certPem, certPem, keyPem })).toBe(true);
  });

  it("refuses a CSR that is not one, or whose signature does not match", async () => {
    const ca = await ClusterCa.loadOrCreate(join(dir, "ca"));
    await expect(ca.signCsr("hello", { id: "n", role: "worker" }, DAY)).rejects.toThrow(CsrError);
    const { csrPem } = await newKeyAndCsr();
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ""), "base64");
    der[der.length - 1]! ^= 1; // the signature's last byte
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString("base64")}\n-----END CERTIFICATE REQUEST-----\n`;
    await expect(ca.signCsr(tampered, { id: "n", role: "worker" }, DAY)).rejects.toThrow(CsrError);
  });

  it("a certificate of another CA is not usable with this one", async () => {
    const ca = await ClusterCa.loadOrCreate(join(dir, "ca"));
    const other = await ClusterCa.loadOrCreate(join(dir, "other"));
    const foreign = await other.issue({ id: "admin", role: "admin" }, DAY);
    expect(isUsable({ ...foreign, caPem: ca.certPem })).toBe(false);
    expect(isUsable(foreign)).toBe(true);
    expect(other.digest).not.toBe(ca.digest);
  });
});

describe("identities on disk", () => {
  it("round-trip, key 0600; a directory without one reads as none", async () => {
    const ca = await ClusterCa.loadOrCreate(join(dir, "ca"));
    const id = await ca.issue({ id: "admin", role: "admin" }, DAY);
    writeIdentity(join(dir, "admin"), id);
    expect(readIdentity(join(dir, "admin"))).toEqual(id);
    expect(statSync(join(dir, "admin", "key.pem")).mode & 0o777).toBe(0o600);
    expect(readIdentity(join(dir, "nothing"))).toBeUndefined();
  });

  it("renewal falls between 50% and 80% of a certificate's life", async () => {
    const ca = await ClusterCa.loadOrCreate(join(dir, "ca"));
    const { certPem } = await ca.issue({ id: "n", role: "worker" }, 100 * DAY);
    const { notBefore, notAfter } = validityOf(certPem);
    const life = notAfter - notBefore;
    const at = (r: number) => renewalDelayMs(certPem, notBefore, r) / life;
    expect(at(0)).toBeCloseTo(0.5, 5);
    expect(at(1)).toBeCloseTo(0.8, 5);
    expect(at(0.5)).toBeCloseTo(0.65, 5);
    expect(renewalDelayMs(certPem, notAfter)).toBe(0);
  });
});

describe("join tokens", () => {
  it("carry the CA digest and a secret, in swarm's shape, and parse back", () => {
    const digest = caDigest(Buffer.from("a certificate"));
    const secret = newSecret();
    const text = formatToken({ caDigest: digest, secret });
    expect(text).toMatch(/^VMTKN-1-[0-9a-z]{50}-[0-9a-z]{25}$/);
    expect(parseToken(text)).toEqual({ caDigest: digest, secret });
    expect(newSecret()).not.toBe(secret);
  });

  it("a malformed token says what a token looks like", () => {
    expect(() => parseToken("SWMTKN-1-abc-def")).toThrow(TokenFormatError);
    expect(() => parseToken(`VMTKN-2-${"a".repeat(50)}-${"b".repeat(25)}`)).toThrow(/version 2/);
    expect(() => parseToken(`VMTKN-1-${"a".repeat(49)}-${"b".repeat(25)}`)).toThrow(/50 base-36/);
    expect(() => parseToken(`VMTKN-1-${"a".repeat(50)}-${"B".repeat(25)}`)).toThrow(/25 base-36/);
  });

  it("secrets compare in constant time, and only equal ones match", () => {
    expect(sameSecret("abc", "abc")).toBe(true);
    expect(sameSecret("abc", "abd")).toBe(false);
    expect(sameSecret("abc", "abcd")).toBe(false);
  });
});
