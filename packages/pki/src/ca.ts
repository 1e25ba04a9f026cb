// The cluster's root CA: created once in the manager's data dir (ECDSA P-256,
// 20 years; the key file is the cluster's root secret, mode 0600), and the
// certificates it signs: for nodes from their CSRs, for the manager itself
// and its local admin and read-only users with keys made here.

import { randomBytes, X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeFileAtomic, type TlsIdentity } from "./identity.ts";
import { type CertIdentity, MANAGER_SERVER_NAME, subjectOf } from "./roles.ts";
import { caDigest } from "./token.ts";
import { type CryptoKey, ECDSA_P256, importPrivateKey, newKeyPair, privateKeyPem, x509 } from "./x509.ts";

const CA_VALIDITY_MS = 20 * 365 * 24 * 3600_000;
/** Certificates start a little in the past: a node whose clock is behind the manager's can use a new one at once. */
const BACKDATE_MS = 5 * 60_000;

export class CsrError extends Error {
  override name = "CsrError";
}

const serial = () => {
  const b = randomBytes(16);
  b[0]! &= 0x7f; // positive
  return b.toString("hex");
};

export class ClusterCa {
  /** SHA-256 of the root certificate, base 36: what join tokens pin. */
  readonly digest: string;

  private constructor(
    readonly certPem: string,
    private readonly key: CryptoKey,
    readonly clusterId: string,
  ) {
    this.digest = caDigest(Buffer.from(new X509Certificate(certPem).raw));
  }

  /** The CA in `dir` (ca.pem, ca.key), made there when missing. */
  static async loadOrCreate(dir: string): Promise<ClusterCa> {
    const certFile = join(dir, "ca.pem");
    const keyFile = join(dir, "ca.key");
    if (existsSync(certFile) && existsSync(keyFile)) {
      const certPem = readFileSync(certFile, "utf8");
      const clusterId = /O=([0-9a-z]+)/.exec(new X509Certificate(certPem).subject)?.[1];
      if (!clusterId) throw new Error(`${certFile} is not a vipmesh root CA (no cluster ID in its subject)`);
      return new ClusterCa(certPem, await importPrivateKey(readFileSync(keyFile, "utf8")), clusterId);
    }
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const clusterId = BigInt(`0x${randomBytes(16).toString("hex")}`).toString(36).padStart(25, "0").slice(0, 25);
    const keys = await newKeyPair();
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=vipmesh-root-ca, O=${clusterId}`,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + CA_VALIDITY_MS),
      keys,
      signingAlgorithm: ECDSA_P256,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    // the key first: a ca.pem without its key would be a CA nobody can sign with
    writeFileAtomic(keyFile, await privateKeyPem(keys.privateKey), 0o600);
    writeFileAtomic(certFile, cert.toString("pem"), 0o644);
    return new ClusterCa(cert.toString("pem"), keys.privateKey, clusterId);
  }

  /** Signs a node's CSR (its own signature checked) for `who`, valid `validityMs`. */
  async signCsr(csrPem: string, who: Omit<CertIdentity, "clusterId">, validityMs: number): Promise<string> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch {
      throw new CsrError("the certificate signing request is not a PEM PKCS#10 request");
    }
    if (!(await csr.verify())) throw new CsrError("the certificate signing request's signature does not match its key");
    const alg = csr.publicKey.algorithm as { name: string; namedCurve?: string };
    if (alg.name !== "ECDSA" || alg.namedCurve !== "P-256") throw new CsrError("the certificate signing request's key must be ECDSA P-256");
    return this.sign(await csr.publicKey.export(), who, validityMs);
  }

  /**
   * A key and certificate made here: for the manager itself, its admin and
   * read-only users. `serverNames`: more names a manager's certificate is valid
   * for (the Engine API's TLS listener: clients such as docker check the address they dialled).
   */
  async issue(who: Omit<CertIdentity, "clusterId">, validityMs: number, serverNames: { dns?: string[]; ips?: string[] } = {}): Promise<TlsIdentity> {
    const keys = await newKeyPair();
    return { caPem: this.certPem, certPem: await this.sign(keys.publicKey, who, validityMs, serverNames), keyPem: await privateKeyPem(keys.privateKey) };
  }

  private async sign(publicKey: CryptoKey, who: Omit<CertIdentity, "clusterId">, validityMs: number, serverNames: { dns?: string[]; ips?: string[] } = {}): Promise<string> {
    const names = [
      { type: "dns" as const, value: MANAGER_SERVER_NAME },
      ...(serverNames.dns ?? []).map((value) => ({ type: "dns" as const, value })),
      ...(serverNames.ips ?? []).map((value) => ({ type: "ip" as const, value })),
    ];
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: subjectOf({ ...who, clusterId: this.clusterId }),
      issuer: new X509Certificate(this.certPem).subject.split("\n").join(", "),
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + validityMs),
      signingKey: this.key,
      publicKey,
      signingAlgorithm: ECDSA_P256,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        ...(who.role === "manager" ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      ],
    });
    return cert.toString("pem");
  }
}
