// The cluster's root CA: created once in the manager's data dir, or by
// `vipmesh ca init` for etcd mode (ECDSA P-256, 20 years; the key is the
// cluster's root secret: a 0600 file, or sealed in the etcd store), and the
// certificates it signs: for nodes from their CSRs, for the manager itself
// and its local admin and read-only users with keys made here.

import { createPrivateKey, randomBytes, X509Certificate } from "node:crypto";
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

/** A CA that is missing, half there, or not ours, or a `ca init` that would replace one: the message says what to do. */
export class CaError extends Error {
  override name = "CaError";
}

/** A CA's certificate and key, PEM: files ca.pem and ca.key in a directory, or two settings in an etcd store. */
export interface CaMaterial {
  certPem: string;
  keyPem: string;
}

const caFiles = (dir: string) => ({ cert: join(dir, "ca.pem"), key: join(dir, "ca.key") });

/** The CA files in `dir`; undefined when it has neither. */
export function readCaFiles(dir: string): CaMaterial | undefined {
  const files = caFiles(dir);
  const [cert, key] = [existsSync(files.cert), existsSync(files.key)];
  if (!cert && !key) return undefined;
  if (!cert || !key) throw new CaError(`${dir} holds ${cert ? "ca.pem without its key ca.key" : "ca.key without its certificate ca.pem"}: not a whole cluster CA`);
  return { certPem: readFileSync(files.cert, "utf8"), keyPem: readFileSync(files.key, "utf8") };
}

const serial = () => {
  const b = randomBytes(16);
  b[0]! &= 0x7f; // positive
  return b.toString("hex");
};

type SubjectAltName = { type: "dns" | "ip"; value: string };

/** What a certificate made by `issueTls` says: its subject, what it may be used for, the names it is valid for. */
export interface TlsCertSpec {
  subject: string;
  usages: x509.ExtendedKeyUsage[];
  names?: SubjectAltName[];
}

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

  /** The CA of a certificate and its key; `where` names their source in errors. */
  static async fromPem({ certPem, keyPem }: CaMaterial, where: string): Promise<ClusterCa> {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(certPem);
      if (!cert.checkPrivateKey(createPrivateKey(keyPem))) throw new CaError(`the CA key in ${where} is not the key of its certificate`);
    } catch (err) {
      if (err instanceof CaError) throw err;
      throw new CaError(`the CA in ${where} is not a PEM certificate and key: ${(err as Error).message}`);
    }
    const clusterId = /O=([0-9a-z]+)/.exec(cert.subject)?.[1];
    if (!cert.ca || !clusterId) throw new CaError(`the certificate in ${where} is not a vipmesh root CA (no cluster ID in its subject)`);
    return new ClusterCa(certPem, await importPrivateKey(keyPem), clusterId);
  }

  /** The CA in `dir` (ca.pem, ca.key), which must be there. */
  static async load(dir: string): Promise<ClusterCa> {
    const material = readCaFiles(dir);
    if (!material) throw new CaError(`${dir} holds no cluster CA (ca.pem and ca.key): make one with \`vipmesh ca init --dir ${dir}\``);
    return ClusterCa.fromPem(material, dir);
  }

  /** The CA in `dir` (ca.pem, ca.key), made there when missing: the single manager's, under its data dir. */
  static async loadOrCreate(dir: string): Promise<ClusterCa> {
    const files = caFiles(dir);
    // one file alone is a make that stopped half way: made again, as no certificate was issued by it
    return existsSync(files.cert) && existsSync(files.key) ? ClusterCa.load(dir) : ClusterCa.generate(dir);
  }

  /** A new CA in `dir` (`vipmesh ca init`); refuses to replace one, which would orphan every certificate it signed. */
  static async create(dir: string): Promise<ClusterCa> {
    const files = caFiles(dir);
    const there = [files.cert, files.key].filter((f) => existsSync(f));
    if (there.length > 0) throw new CaError(`${there.join(" and ")} already exist${there.length === 1 ? "s" : ""}: a new CA there would orphan every certificate the old one signed; remove ${dir} first if that is what you want`);
    return ClusterCa.generate(dir);
  }

  private static async generate(dir: string): Promise<ClusterCa> {
    const files = caFiles(dir);
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
    writeFileAtomic(files.key, await privateKeyPem(keys.privateKey), 0o600);
    writeFileAtomic(files.cert, cert.toString("pem"), 0o644);
    return new ClusterCa(cert.toString("pem"), keys.privateKey, clusterId);
  }

  /** Signs a node's CSR (its own signature checked) for `who`, valid `validityMs`. */
  signCsr(csrPem: string, who: Omit<CertIdentity, "clusterId">, validityMs: number): Promise<string> {
    return this.signCsrAs(csrPem, nodeSpec(this.clusterId, who), validityMs);
  }

  /** Signs a CSR (its own signature checked) as `spec` says: a new manager's etcd client key (etcd-certs.ts). */
  async signCsrAs(csrPem: string, spec: TlsCertSpec, validityMs: number): Promise<string> {
    let csr: x509.Pkcs10CertificateRequest;
    try {
      csr = new x509.Pkcs10CertificateRequest(csrPem);
    } catch {
      throw new CsrError("the certificate signing request is not a PEM PKCS#10 request");
    }
    if (!(await csr.verify())) throw new CsrError("the certificate signing request's signature does not match its key");
    const alg = csr.publicKey.algorithm as { name: string; namedCurve?: string };
    if (alg.name !== "ECDSA" || alg.namedCurve !== "P-256") throw new CsrError("the certificate signing request's key must be ECDSA P-256");
    return this.sign(await csr.publicKey.export(), spec, validityMs);
  }

  /**
   * A key and certificate made here: for the manager itself, its admin and
   * read-only users. `serverNames`: more names a manager's certificate is valid
   * for (the Engine API's TLS listener: clients such as docker check the address they dialled).
   */
  issue(who: Omit<CertIdentity, "clusterId">, validityMs: number, serverNames: { dns?: string[]; ips?: string[] } = {}): Promise<TlsIdentity> {
    return this.issueTls(nodeSpec(this.clusterId, who, serverNames), validityMs);
  }

  /** A key made here and a certificate as `spec` says (etcd's members and clients: etcd-certs.ts). */
  async issueTls(spec: TlsCertSpec, validityMs: number): Promise<TlsIdentity> {
    const keys = await newKeyPair();
    return { caPem: this.certPem, certPem: await this.sign(keys.publicKey, spec, validityMs), keyPem: await privateKeyPem(keys.privateKey) };
  }

  private async sign(publicKey: CryptoKey, spec: TlsCertSpec, validityMs: number): Promise<string> {
    const now = Date.now();
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: spec.subject,
      issuer: new X509Certificate(this.certPem).subject.split("\n").join(", "),
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(now + validityMs),
      signingKey: this.key,
      publicKey,
      signingAlgorithm: ECDSA_P256,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension(spec.usages),
        ...(spec.names?.length ? [new x509.SubjectAlternativeNameExtension(spec.names)] : []),
      ],
    });
    return cert.toString("pem");
  }
}

/** A node's or an API user's certificate: both usages; a manager's also valid for MANAGER_SERVER_NAME and its listeners' names. */
function nodeSpec(clusterId: string, who: Omit<CertIdentity, "clusterId">, serverNames: { dns?: string[]; ips?: string[] } = {}): TlsCertSpec {
  const names: SubjectAltName[] = [
    { type: "dns", value: MANAGER_SERVER_NAME },
    ...(serverNames.dns ?? []).map((value) => ({ type: "dns" as const, value })),
    ...(serverNames.ips ?? []).map((value) => ({ type: "ip" as const, value })),
  ];
  return {
    subject: subjectOf({ ...who, clusterId }),
    usages: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    names: who.role === "manager" ? names : [],
  };
}
