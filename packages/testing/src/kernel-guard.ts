// For tests that need the real kernel (root, iproute2, namespaces). Where
// they cannot run, they skip with a loud message; under CI they fail instead,
// so that a CI machine that lost root or iproute2 cannot go green by skipping.

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, it } from "vitest";

export const inCi = (): boolean => {
  const v = process.env.CI?.trim().toLowerCase();
  return v !== undefined && v !== "" && v !== "0" && v !== "false";
};

let reason: string | null | undefined;

/** Why kernel tests cannot run here, or undefined when they can. */
export function kernelUnavailable(): string | undefined {
  if (reason === undefined) reason = probe() ?? null;
  return reason ?? undefined;
}

function probe(): string | undefined {
  if (process.platform !== "linux") return `this is ${process.platform}, not Linux`;
  if (process.getuid?.() !== 0) return "not running as root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)";
  for (const tool of ["ip", "bridge"]) {
    try {
      execFileSync(tool, ["-V"], { stdio: "ignore" });
    } catch {
      return `\`${tool}\` (iproute2) is not installed`;
    }
  }
  return undefined;
}

function announce(what: string, why: string): void {
  const line = "!".repeat(78);
  console.warn(`\n${line}\n!! SKIPPED kernel tests: ${what}\n!! because ${why}\n!! (under CI=true these fail instead)\n${line}\n`);
}

/** describe() for kernel tests: runs them, or skips them loudly, or under CI fails. */
export function kernelDescribe(name: string, fn: () => void): void {
  guardedDescribe(name, fn, kernelUnavailable());
}

/** What container tests need besides the kernel's: Debian's containerd, runc and ctr, and busybox-static (their images' base). */
const CONTAINERD_NEEDS = ["/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/bin/runc", "/usr/bin/ctr", "/bin/busybox", "/usr/bin/nsenter"];

/** Why container tests cannot run here, or undefined when they can. */
export function containerdUnavailable(): string | undefined {
  const missing = CONTAINERD_NEEDS.filter((p) => !existsSync(p));
  return kernelUnavailable() ?? (missing.length ? `missing ${missing.join(", ")} (scripts/bootstrap.sh installs containerd, runc and busybox-static)` : undefined);
}

/** describe() for tests that run containers (root, namespaces, containerd and runc): as kernelDescribe. */
export function containerdDescribe(name: string, fn: () => void): void {
  guardedDescribe(name, fn, containerdUnavailable());
}

function guardedDescribe(name: string, fn: () => void, why: string | undefined): void {
  if (why === undefined) return void describe(name, fn);
  if (inCi()) {
    return void describe(name, () => {
      it("has what kernel tests need", () => {
        throw new Error(`kernel tests cannot run on this CI machine: ${why}`);
      });
    });
  }
  announce(name, why);
  describe.skip(name, fn);
}

/** it() for one kernel test among others. */
export function kernelIt(name: string, fn: () => Promise<void> | void, timeoutMs?: number): void {
  const why = kernelUnavailable();
  if (why === undefined) return void it(name, fn, timeoutMs);
  if (inCi()) {
    return void it(name, () => {
      throw new Error(`kernel test cannot run on this CI machine: ${why}`);
    });
  }
  announce(name, why);
  it.skip(name, fn);
}

/** For a test that checks inside itself: false (after a loud message) when it should return early; throws under CI. */
export function requireKernel(what = "this test"): boolean {
  const why = kernelUnavailable();
  if (why === undefined) return true;
  if (inCi()) throw new Error(`kernel test cannot run on this CI machine: ${why}`);
  announce(what, why);
  return false;
}
