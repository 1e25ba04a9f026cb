// @peculiar/x509 on Node's WebCrypto: key pairs, CSRs and PEM, ECDSA P-256 throughout.

import "reflect-metadata"; // @peculiar/x509's dependency injection needs it loaded first
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";

x509.cryptoProvider.set(webcrypto as never);

// WebCrypto's types from node:crypto (this tree has no DOM lib)
export type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

export { x509 };

export const ECDSA_P256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

export function newKeyPair(): Promise<CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ECDSA_P256, true, ["sign", "verify"]) as Promise<CryptoKeyPair>;
}

export async function privateKeyPem(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", key));
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

export async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decodeFirst(pem);
  return webcrypto.subtle.importKey("pkcs8", der, ECDSA_P256, true, ["sign"]) as Promise<CryptoKey>;
}

/** A fresh key and a CSR for it: the key never leaves the node, the manager signs the CSR. */
export async function newKeyAndCsr(): Promise<{ keyPem: string; csrPem: string }> {
  const keys = await newKeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: "CN=vipmesh-node", keys, signingAlgorithm: ECDSA_P256 });
  return { keyPem: await privateKeyPem(keys.privateKey), csrPem: csr.toString("pem") };
}
