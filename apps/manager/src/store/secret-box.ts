// The store key: 32 bytes every manager of an etcd cluster is given from a
// 0600 file (as swarm's autolock key), sealing the settings (token secrets,
// overlay keys, the CA's key) so that whoever reads etcd reads no secret.
// AES-256-GCM, the setting's name as additional data: a sealed value moved
// to another name does not open.

import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** The sealed form's version, so that a later format can tell the two apart. */
const FORMAT = "v1:";

export const newStoreKey = (): Buffer => randomBytes(KEY_BYTES);

/** Writes a new store key to `path` (64 hex characters, mode 0600); refuses to overwrite a file. */
export function writeStoreKey(path: string, key: Buffer = newStoreKey()): void {
  try {
    writeFileSync(path, `${key.toString("hex")}\n`, { mode: 0o600, flag: "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") throw new Error(`${path} exists: a store key is never overwritten (the cluster's secrets would be lost with it)`);
    throw err;
  }
}

/** Reads a store key file: 64 hex characters, readable by its owner only. */
export function readStoreKey(path: string): Buffer {
  let mode: number;
  let text: string;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new Error(`cannot read the store key ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (mode & 0o077) {
    throw new Error(`the store key ${path} is open to group or others (mode ${(mode & 0o777).toString(8)}): chmod 600 ${path}`);
  }
  if (!/^[0-9a-fA-F]{64}$/.test(text)) throw new Error(`${path} is not a store key: it holds 64 hex characters (vipmesh store key --out FILE makes one)`);
  return Buffer.from(text, "hex");
}

/** `value` sealed for the setting `name`: "v1:" and base64 of IV, tag and ciphertext. */
export function seal(key: Buffer, name: string, value: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(Buffer.from(name));
  const body = Buffer.concat([cipher.update(value, "utf8"), cipher.final()]);
  return FORMAT + Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64");
}

/** The value sealed for `name`; throws when `key` did not seal it (or it was altered). */
export function open(key: Buffer, name: string, sealed: string): string {
  const raw = sealed.startsWith(FORMAT) ? Buffer.from(sealed.slice(FORMAT.length), "base64") : undefined;
  if (!raw || raw.length < IV_BYTES + TAG_BYTES) throw new Error(`setting ${name} is not a sealed value`);
  const decipher = createDecipheriv("aes-256-gcm", key, raw.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(name));
  decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString("utf8");
  } catch {
    throw new Error(`setting ${name} does not open with this key`);
  }
}
