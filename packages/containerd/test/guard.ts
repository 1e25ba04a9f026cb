// describe() for tests that need root, namespaces and containerd: they run,
// or skip loudly, or under CI=true fail (as packages/testing's kernel guard).

import { existsSync } from "node:fs";
import { describe, it } from "vitest";
import { inCi, kernelUnavailable } from "@vipmesh/testing/kernel";

const NEEDS = ["/usr/bin/containerd", "/usr/bin/containerd-shim-runc-v2", "/usr/bin/runc", "/usr/bin/ctr", "/bin/busybox", "/usr/bin/nsenter"];

export function containerdUnavailable(): string | undefined {
  const kernel = kernelUnavailable();
  if (kernel) return kernel;
  const missing = NEEDS.filter((p) => !existsSync(p));
  return missing.length ? `missing ${missing.join(", ")} (apt-get install containerd runc busybox-static)` : undefined;
}

export function containerdDescribe(name: string, fn: () => void): void {
  const why = containerdUnavailable();
  if (why === undefined) return void describe(name, fn);
  if (inCi()) {
    return void describe(name, () => {
      it("has what containerd tests need", () => {
        throw new Error(`containerd tests cannot run on this CI machine: ${why}`);
      });
    });
  }
  const line = "!".repeat(78);
  console.warn(`\n${line}\n!! SKIPPED containerd tests: ${name}\n!! because ${why}\n!! (under CI=true these fail instead)\n${line}\n`);
  describe.skip(name, fn);
}
