// Kernel tests need root and iproute2. Without them they skip loudly — except
// under CI=true, where a skip would hide that the kernel paths never ran, so
// they fail instead.

import { execFileSync } from "node:child_process";

export function kernelUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return "not running as root";
  try {
    execFileSync("ip", ["netns", "list"], { stdio: "ignore" });
  } catch {
    return "`ip netns` does not work here";
  }
  return undefined;
}

/** Call at the top of a kernel test file: returns true when the tests must be skipped. */
export function skipKernelTests(): boolean {
  const why = kernelUnavailable();
  if (!why) return false;
  if (process.env.CI === "true") throw new Error(`kernel tests cannot run (${why}), and CI=true forbids skipping them`);
  console.warn(`\n*** SKIPPING kernel tests: ${why} ***\n`);
  return true;
}
