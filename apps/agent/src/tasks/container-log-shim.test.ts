// confine's container log shim run as containerd's shim runs a binary://
// log URI (CONTAINER_ID set, the container's stdout and stderr on fds 3 and
// 4, fd 5 closed once ready). Needs no root: only the built binary.

import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Duplex } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { CONFINE } from "./confine.ts";

function shim(log: string) {
  const child = spawn(CONFINE, ["--log", log, "--log-max-bytes", "0"], { env: { CONTAINER_ID: "c1" }, stdio: ["ignore", "ignore", "pipe", "pipe", "pipe", "pipe"] });
  const [out, err, ready] = (child.stdio as unknown as Duplex[]).slice(3) as [Duplex, Duplex, Duplex];
  let stderr = "";
  child.stderr?.on("data", (b: Buffer) => (stderr += b));
  const isReady = new Promise<void>((r) => {
    ready.on("end", r).on("close", r).resume();
  });
  const ended = new Promise<{ code: number | null; signal: string | null; stderr: string }>((r) => child.on("exit", (code, signal) => r({ code, signal, stderr })));
  return { child, out, err, isReady, ended };
}

describe("container log shim", () => {
  let dir = "";
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("outlives containerd's SIGTERM and logs what is still in the pipes", async () => {
    dir = mkdtempSync(join(tmpdir(), "vm-logshim-"));
    const s = shim(join(dir, "log"));
    await s.isReady;
    s.out.write("first\n");
    await new Promise((r) => setTimeout(r, 50));
    s.child.kill("SIGTERM"); // containerd 1.6 closes the pipes and sends SIGTERM at once
    await new Promise((r) => setTimeout(r, 50));
    s.out.end("last words\n");
    s.err.end("a crash message\n");
    expect(await s.ended).toMatchObject({ code: 0, signal: null });
    const lines = readFileSync(join(dir, "log"), "utf8").trim().split("\n").map((l) => l.split(" ").slice(1).join(" "));
    expect(lines.sort()).toEqual(["o first", "o last words", "e a crash message"].sort());
  });

  it("without its log, still says it is ready and drains the container's output (no SIGPIPE for the container)", async () => {
    dir = mkdtempSync(join(tmpdir(), "vm-logshim-"));
    const s = shim(join(dir, "missing", "log"));
    await s.isReady;
    s.out.write(Buffer.alloc(1024 * 1024, "a")); // more than a pipe holds: read, then dropped
    s.out.end();
    s.err.end("x\n");
    const end = await s.ended;
    expect(end).toMatchObject({ code: 0, signal: null });
    expect(end.stderr).toContain("the container's output is dropped");
  });
});
