import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CaError, ClusterCa, readCaFiles } from "./ca.ts";
import { issueEtcdCertificate } from "./etcd-certs.ts";
import { readIdentity } from "./identity.ts";

const dir = mkdtempSync(join(tmpdir(), "vipmesh-etcd-certs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const caDir = join(dir, "ca");
const DAY = 24 * 3600_000;

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

/** openssl's own check of a certificate against the CA, for a purpose (sslserver, sslclient); its output on failure. */
function opensslVerify(out: string, purpose: "sslserver" | "sslclient"): { ok: boolean; text: string } {
  try {
    const text = execFileSync("openssl", ["verify", "-purpose", purpose, "-CAfile", join(out, "ca.pem"), join(out, "cert.pem")], { encoding: "utf8", stdio: "pipe" });
    return { ok: true, text };
  } catch (err) {
    return { ok: false, text: String((err as { stdout?: string }).stdout) + String((err as { stderr?: string }).stderr) };
  }
}

describe("ca init (ClusterCa.create)", () => {
  it("makes a CA with its key 0600, which loads back the same", async () => {
    const ca = await ClusterCa.create(caDir);
    expect(statSync(join(caDir, "ca.key")).mode & 0o777).toBe(0o600);
    expect(statSync(caDir).mode & 0o777).toBe(0o700);
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(Math.round((Date.parse(cert.validTo) - Date.now()) / (365 * DAY))).toBe(20);
    const loaded = await ClusterCa.load(caDir);
    expect([loaded.digest, loaded.clusterId]).toEqual([ca.digest, ca.clusterId]);
  });

  it("refuses to replace a CA, or half of one, leaving it as it was", async () => {
    const before = readCaFiles(caDir);
    await expect(ClusterCa.create(caDir)).rejects.toThrow(/ca\.pem and .*ca\.key already exist: a new CA there would orphan/);
    expect(readCaFiles(caDir)).toEqual(before);
    const half = join(dir, "half");
    await ClusterCa.create(half);
    rmSync(join(half, "ca.pem"));
    await expect(ClusterCa.create(half)).rejects.toThrow(/ca\.key already exists/);
    await expect(ClusterCa.load(half)).rejects.toThrow(/holds ca\.key without its certificate ca\.pem/);
  });

  it("a directory without a CA, or a key that is not the certificate's, says so", async () => {
    await expect(ClusterCa.load(join(dir, "none"))).rejects.toThrow(/holds no cluster CA .*vipmesh ca init --dir/);
    const other = await ClusterCa.create(join(dir, "other"));
    const mixed = { certPem: other.certPem, keyPem: readFileSync(join(caDir, "ca.key"), "utf8") };
    await expect(ClusterCa.fromPem(mixed, "the store")).rejects.toThrow("the CA key in the store is not the key of its certificate");
    await expect(ClusterCa.fromPem({ certPem: "x", keyPem: "y" }, "the store")).rejects.toThrow(CaError);
  });
});

describe("ca issue (issueEtcdCertificate)", () => {
  it("a peer certificate: its name as CN, OU=etcd, the SANs asked, serverAuth and clientAuth; openssl accepts it both ways", async () => {
    const out = join(dir, "m1");
    const id = await issueEtcdCertificate(caDir, { name: "m1", usage: "peer", ips: ["10.9.0.1", "fd00::1"], dns: ["m1.lab"] }, out);
    expect(readIdentity(out)).toEqual(id);
    expect(statSync(join(out, "key.pem")).mode & 0o777).toBe(0o600);
    const cert = new X509Certificate(id.certPem);
    const ca = await ClusterCa.load(caDir);
    expect(cert.subject.split("\n")).toEqual(["CN=m1", "OU=etcd", `O=${ca.clusterId}`]);
    expect(cert.subjectAltName).toBe("IP Address:10.9.0.1, IP Address:FD00:0:0:0:0:0:0:1, DNS:m1.lab");
    expect(cert.keyUsage.sort()).toEqual([SERVER_AUTH, CLIENT_AUTH]);
    expect(cert.checkIP("10.9.0.1")).toBe("10.9.0.1");
    expect(cert.checkIP("10.9.0.2")).toBeUndefined();
    expect(opensslVerify(out, "sslserver")).toEqual({ ok: true, text: `${join(out, "cert.pem")}: OK\n` });
    expect(opensslVerify(out, "sslclient").ok).toBe(true);
    expect(Math.round((Date.parse(cert.validTo) - Date.now()) / DAY)).toBe(365);
  });

  it("a server certificate serves only; a client certificate, with the CN given, dials only and names no address", async () => {
    const server = join(dir, "server");
    await issueEtcdCertificate(caDir, { name: "m2", usage: "server", ips: ["127.0.0.1"] }, server);
    expect(new X509Certificate(readFileSync(join(server, "cert.pem"))).keyUsage).toEqual([SERVER_AUTH]);
    expect(opensslVerify(server, "sslserver").ok).toBe(true);
    expect(opensslVerify(server, "sslclient")).toMatchObject({ ok: false, text: expect.stringContaining("unsuitable certificate purpose") });

    const client = join(dir, "client");
    const id = await issueEtcdCertificate(caDir, { name: "manager", usage: "client", cn: "vipmesh-manager" }, client, 30 * DAY);
    const cert = new X509Certificate(id.certPem);
    expect(cert.subject.split("\n")[0]).toBe("CN=vipmesh-manager");
    expect(cert.keyUsage).toEqual([CLIENT_AUTH]);
    expect(cert.subjectAltName).toBeUndefined();
    expect(opensslVerify(client, "sslclient").ok).toBe(true);
    expect(opensslVerify(client, "sslserver").ok).toBe(false);
    expect(Math.round((Date.parse(cert.validTo) - Date.now()) / DAY)).toBe(30);
  });

  it("a certificate of another CA does not verify against this one", async () => {
    const out = join(dir, "foreign");
    await issueEtcdCertificate(join(dir, "other"), { name: "m1", usage: "peer", ips: ["127.0.0.1"] }, out);
    writeFileSync(join(out, "ca.pem"), readFileSync(join(caDir, "ca.pem")));
    expect(opensslVerify(out, "sslserver")).toMatchObject({ ok: false, text: expect.stringContaining("unable to get local issuer certificate") });
  });

  it("refuses what would make a useless or misleading certificate, writing nothing", async () => {
    const out = join(dir, "refused");
    const refused = (req: Parameters<typeof issueEtcdCertificate>[1]) => issueEtcdCertificate(caDir, req, out);
    await expect(refused({ name: "m1", usage: "server" })).rejects.toThrow("a server certificate needs the addresses it serves on (--ip, --dns): clients check the one they dialled");
    await expect(refused({ name: "m1", usage: "peer", ips: ["10.0.0.300"] })).rejects.toThrow('"10.0.0.300" is not an IP address');
    await expect(refused({ name: "m1", usage: "peer", dns: ["a b"] })).rejects.toThrow('"a b" is not a DNS name');
    await expect(refused({ name: "x", usage: "client", cn: "root, O=evil" })).rejects.toThrow(`the CN "root, O=evil" may hold letters, digits`);
    await expect(refused({ name: "x", usage: "both" as never })).rejects.toThrow('the usage is server, peer or client, not "both"');
    await expect(issueEtcdCertificate(join(dir, "none"), { name: "x", usage: "client" }, out)).rejects.toThrow(/holds no cluster CA/);
    expect(readIdentity(out)).toBeUndefined();
  });
});
