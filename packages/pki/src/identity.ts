// A TLS identity on disk — a directory with ca.pem, cert.pem and key.pem
// (0600), written atomically — and when it is due for renewal.

import { randomBytes, X509Certificate } from "node:crypto";
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

export interface TlsIdentity {
  /** The cluster's root CA certificate: what the peer's certificate must chain to. */
  caPem: string;
  certPem: string;
  keyPem: string;
}

const FILES = { caPem: "ca.pem", certPem: "cert.pem", keyPem: "key.pem" } as const;

export function writeFileAtomic(file: string, data: string, mode: number): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, data, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

/** The identity in `dir`; undefined when it has none (a file missing). */
export function readIdentity(dir: string): TlsIdentity | undefined {
  try {
    return {
      caPem: readFileSync(join(dir, FILES.caPem), "utf8"),
      certPem: readFileSync(join(dir, FILES.certPem), "utf8"),
      keyPem: readFileSync(join(dir, FILES.keyPem), "utf8"),
    };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/** Writes the key first and the certificate last, each atomically: a reader never sees a certificate without its key. */
export function writeIdentity(dir: string, id: TlsIdentity): void {
  writeFileAtomic(join(dir, FILES.keyPem), id.keyPem, 0o600);
  writeFileAtomic(join(dir, FILES.caPem), id.caPem, 0o644);
  writeFileAtomic(join(dir, FILES.certPem), id.certPem, 0o644);
}

export interface Validity {
  notBefore: number;
  notAfter: number;
}

export function validityOf(certPem: string): Validity {
  const c = new X509Certificate(certPem);
  return { notBefore: Date.parse(c.validFrom), notAfter: Date.parse(c.validTo) };
}

/** Whether the identity's certificate is signed by its CA and valid at `now`. */
export function isUsable(id: TlsIdentity, now = Date.now()): boolean {
  try {
    const cert = new X509Certificate(id.certPem);
    const { notBefore, notAfter } = validityOf(id.certPem);
    return cert.verify(new X509Certificate(id.caPem).publicKey) && notBefore <= now && now < notAfter;
  } catch {
    return false;
  }
}

/**
 * When to renew: at a random point between 50% and 80% of the certificate's
 * life (nodes joined together do not all renew at once), as ms from `now`; 0
 * when that point is past.
 */
export function renewalDelayMs(certPem: string, now = Date.now(), random = Math.random()): number {
  const { notBefore, notAfter } = validityOf(certPem);
  const at = notBefore + (notAfter - notBefore) * (0.5 + 0.3 * random);
  return Math.max(0, Math.round(at - now));
}
