// The shape every test run in the kernel VM shares: skip loudly where no VM
// can boot (not root, tools missing), fail instead under CI, boot once, run a
// script of the checkout in it, and pass when it ends with "ALL OK".

import { inCi } from "@vipmesh/testing/kernel";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { runInVm, vmUnavailable } from "./vm.ts";

const REPO = fileURLToPath(new URL("../../..", import.meta.url)).replace(/\/$/, "");

export interface InVmTest {
  /** What is skipped, for the warning ("IPVS tests"). */
  what: string;
  describe: string;
  it: string;
  /** The script to run inside, in a package's test/ folder (`new URL("./x-in-vm.ts", import.meta.url)`); it runs with tsx from the package's folder. */
  script: URL;
  /** Host commands the script needs besides the VM's own (their Debian package in the message). */
  needs?: Record<string, string>;
  /**
   * Modules the script's processes load (say "@vipmesh/manager"): compiled on
   * the host first, into tsx's cache, which the VM shares, so that under
   * emulation (many times slower) a process starts without compiling them.
   */
  warm?: string[];
  memoryMb?: number;
  timeoutMs?: number;
}

/** Why this test cannot run here, or undefined. */
function unavailable(t: InVmTest): string | undefined {
  const missing = Object.entries(t.needs ?? {}).filter(([cmd]) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status !== 0);
  return (
    vmUnavailable() ??
    (process.getuid?.() !== 0 ? "not root" : undefined) ??
    (missing.length > 0 ? `missing ${missing.map(([c]) => c).join(", ")}: apt-get install ${missing.map(([, p]) => p).join(" ")} (scripts/bootstrap.sh does)` : undefined)
  );
}

/** tsx's compile cache, with `modules` (resolved from `dir`) compiled into it. */
function warmTsxCache(dir: string, modules: string[]): string {
  const cache = join(tmpdir(), `tsx-${process.getuid?.()}`);
  mkdirSync(cache, { recursive: true, mode: 0o700 });
  const imports = modules.map((m) => `import(${JSON.stringify(m)})`).join(", ");
  if (modules.length > 0) execFileSync("node", ["--import", "tsx", "--eval", `await Promise.all([${imports}])`], { cwd: dir, stdio: "ignore", timeout: 120_000 });
  return cache;
}

/**
 * A test that runs `t.script` in Debian's kernel under the VM. Its output is
 * printed when it ends, and as it goes with VIPMESH_VM_VERBOSE=1.
 */
export function describeInVm(t: InVmTest): void {
  const why = unavailable(t);
  if (why && !inCi()) console.warn(`\n!! SKIPPED ${t.what} in the kernel VM: ${why} (under CI=true they fail instead)\n`);
  const timeoutMs = t.timeoutMs ?? 10 * 60_000;
  describe.skipIf(why !== undefined && !inCi())(t.describe, () => {
    it(t.it, { timeout: timeoutMs + 60_000 }, async () => {
      expect(why, "what the VM needs").toBeUndefined();
      const script = fileURLToPath(t.script);
      const pkg = dirname(dirname(script));
      const r = await runInVm({
        // the checkout may live under /tmp, which the VM mounts afresh: share it at its own path
        shares: [REPO, warmTsxCache(pkg, t.warm ?? [])],
        command: `cd ${pkg} && node --import tsx ${relative(pkg, script)}`,
        memoryMb: t.memoryMb ?? 2048,
        timeoutMs,
        onOutput: process.env.VIPMESH_VM_VERBOSE ? (s) => process.stderr.write(s) : undefined,
      });
      console.log(`${r.output.trim()}\n(VM: ${r.seconds.toFixed(0)} s)`);
      expect(r.output).toContain("ALL OK");
      expect(r.exitCode, r.output || r.console.slice(-3000)).toBe(0);
    });
  });
}
