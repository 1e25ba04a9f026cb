// unmountUnder (the one the lab and startContainerd share) takes every mount
// under a dir, nested ones first, in a private mount namespace of its own.

import { execFileSync } from "node:child_process";
import { expect, it } from "vitest";
import { containerdDescribe } from "@vipmesh/testing/kernel";

containerdDescribe("unmountUnder", () => {
  it("unmounts nested mounts under a dir, deepest first, and says nothing stays", () => {
    const dir = `/tmp/vmum${process.pid}-${Date.now()}`;
    const host = new URL("../src/host.ts", import.meta.url).pathname;
    const script = `
      import { mkdirSync, rmSync } from "node:fs";
      import { execFileSync } from "node:child_process";
      import { mountsUnder, unmountUnder } from ${JSON.stringify(host)};
      const dir = ${JSON.stringify(dir)};
      mkdirSync(dir, { recursive: true });
      try {
        execFileSync("mount", ["-t", "tmpfs", "a", dir]);
        mkdirSync(dir + "/b");
        execFileSync("mount", ["-t", "tmpfs", "b", dir + "/b"]);
        console.log(JSON.stringify({ before: mountsUnder(dir).length, left: unmountUnder(dir), after: mountsUnder(dir) }));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    `;
    // a private mount namespace: nothing of this reaches the machine's mounts
    const out = execFileSync("unshare", ["--mount", "--propagation", "private", process.execPath, "--import", "tsx", "--input-type=module", "-e", script], {
      encoding: "utf8",
      timeout: 30_000,
      cwd: new URL("..", import.meta.url).pathname,
    });
    expect(JSON.parse(out.trim())).toEqual({ before: 2, left: [], after: [] });
  });
});
