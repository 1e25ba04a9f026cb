import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tempDir } from "@vipmesh/testing";
import { afterEach, expect, test } from "vitest";
import { newStoreKey, open, readStoreKey, seal, writeStoreKey } from "./secret-box.ts";

const dirs: { remove: () => void }[] = [];
afterEach(() => dirs.splice(0).forEach((d) => d.remove()));
const dir = () => {
  const d = tempDir("vipmesh-secret-box-");
  dirs.push(d);
  return d.path;
};

test("a sealed value opens with its key and name only, and shows nothing of the value", () => {
  const key = newStoreKey();
  const sealed = seal(key, "overlay-key", "very-secret");
  expect(sealed).toMatch(/^v1:/);
  expect(Buffer.from(sealed.slice(3), "base64").toString("latin1")).not.toContain("very-secret");
  expect(seal(key, "overlay-key", "very-secret")).not.toBe(sealed); // a fresh IV each time
  expect(open(key, "overlay-key", sealed)).toBe("very-secret");
  expect(() => open(newStoreKey(), "overlay-key", sealed)).toThrow("setting overlay-key does not open with this key");
  expect(() => open(key, "join-secret", sealed)).toThrow("does not open"); // moved to another name
  expect(() => open(key, "overlay-key", "plain")).toThrow("setting overlay-key is not a sealed value");
});

test("a key file: written 0600 once, read back; refused when others may read it or it is not a key", () => {
  const path = join(dir(), "store.key");
  const key = newStoreKey();
  writeStoreKey(path, key);
  expect(statSync(path).mode & 0o777).toBe(0o600);
  expect(readFileSync(path, "utf8")).toBe(`${key.toString("hex")}\n`);
  expect(readStoreKey(path)).toEqual(key);
  expect(() => writeStoreKey(path)).toThrow(`${path} exists: a store key is never overwritten`);
  chmodSync(path, 0o640);
  expect(() => readStoreKey(path)).toThrow(`the store key ${path} is open to group or others (mode 640): chmod 600 ${path}`);
  const bad = join(dir(), "bad.key");
  writeFileSync(bad, "not-a-key\n", { mode: 0o600 });
  expect(() => readStoreKey(bad)).toThrow(`${bad} is not a store key: it holds 64 hex characters`);
  expect(() => readStoreKey(join(dir(), "missing"))).toThrow("cannot read the store key");
});
