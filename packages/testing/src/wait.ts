import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Polls until a check passes: the one in @vipmesh/api, which the lab uses too. */
export { waitFor } from "@vipmesh/api";

/** A fresh temporary directory and its removal. */
export function tempDir(prefix = "vipmesh-test-"): { path: string; remove: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) };
}
