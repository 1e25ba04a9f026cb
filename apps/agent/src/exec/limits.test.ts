import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

describe("openFilesLimit", () => {
  it("is the hard limit in an agent started with a lower soft one (Node raises it as it starts)", () => {
    const script = fileURLToPath(new URL("./testdata/open-files-limit.ts", import.meta.url));
    const out = execFileSync("prlimit", ["--nofile=256:4096", process.execPath, "--import", "tsx", script], {
      encoding: "utf8",
      cwd: fileURLToPath(new URL("../..", import.meta.url)),
    });
    expect(JSON.parse(out)).toEqual({ soft: 4096, hard: 4096 });
  });
});
