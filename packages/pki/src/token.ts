// Join tokens in swarm's shape: VMTKN-1-<digest>-<secret>. The digest (SHA-256
// of the root CA certificate's DER, base 36, 50 characters) lets a joining
// node check the CA it is handed before it trusts it; the secret (128 random
// bits, base 36, 25 characters) is what authorises the join.

import { createHash, randomBytes, timingSafeEqual } from "node:crypto";

const PREFIX = "VMTKN";
const VERSION = "1";
const DIGEST_CHARS = 50;
const SECRET_CHARS = 25;

export interface JoinToken {
  /** base 36 of the root CA's SHA-256 */
  caDigest: string;
  secret: string;
}

const base36 = (buf: Buffer, width: number) => BigInt(`0x${buf.toString("hex")}`).toString(36).padStart(width, "0");

/** The digest a token pins: SHA-256 of the CA certificate's DER. */
export function caDigest(caDer: Buffer): string {
  return base36(createHash("sha256").update(caDer).digest(), DIGEST_CHARS);
}

export function newSecret(): string {
  return base36(randomBytes(16), SECRET_CHARS);
}

export function formatToken(t: JoinToken): string {
  return `${PREFIX}-${VERSION}-${t.caDigest}-${t.secret}`;
}

export class TokenFormatError extends Error {
  override name = "TokenFormatError";
}

export function parseToken(text: string): JoinToken {
  const parts = text.trim().split("-");
  if (parts.length !== 4 || parts[0] !== PREFIX) throw new TokenFormatError(`a join token looks like ${PREFIX}-1-<50 characters>-<25 characters>`);
  if (parts[1] !== VERSION) throw new TokenFormatError(`join token version ${parts[1]} is not supported (this is version ${VERSION})`);
  const [, , digest, secret] = parts as [string, string, string, string];
  if (!/^[0-9a-z]+$/.test(digest) || digest.length !== DIGEST_CHARS) throw new TokenFormatError(`the join token's CA digest must be ${DIGEST_CHARS} base-36 characters`);
  if (!/^[0-9a-z]+$/.test(secret) || secret.length !== SECRET_CHARS) throw new TokenFormatError(`the join token's secret must be ${SECRET_CHARS} base-36 characters`);
  return { caDigest: digest, secret };
}

/** Constant-time comparison of two secrets. */
export function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
