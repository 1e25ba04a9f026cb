import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { readJoinToken } from "./agent.ts";

describe("readJoinToken", () => {
  const dir = mkdtempSync(join(tmpdir(), "vipmesh-token-"));
  afterEach(() => rmSync(join(dir, "t"), { force: true }));
  const tokenFile = (text: string, mode: number) => {
    const file = join(dir, "t");
    writeFileSync(file, text);
    chmodSync(file, mode);
    return file;
  };

  it("reads a 0600 file, without its newline", () => {
    expect(readJoinToken(tokenFile("VMTKN-1-abc-def\n", 0o600))).toBe("VMTKN-1-abc-def");
  });

  it("refuses a file others can read, saying how to fix it", () => {
    const file = tokenFile("VMTKN-1-abc-def\n", 0o644);
    expect(() => readJoinToken(file)).toThrow(`the join token file ${file} can be read by others (mode 644): chmod 600 ${file}`);
  });

  it("refuses an empty file and a missing one", () => {
    expect(() => readJoinToken(tokenFile("\n", 0o600))).toThrow(/holds no join token/);
    expect(() => readJoinToken(join(dir, "missing"))).toThrow(/cannot read the join token from .*missing: ENOENT/);
  });
});
