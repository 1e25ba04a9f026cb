// Builds the embedded DNS's UDP path (src/dns/replay.c, a Node-API addon) into
// build/dns-replay.node with the system's C compiler; does nothing when the
// build is newer than its source. Run by `npm ci` (the package's install
// script) and before the package's tests.

import { execFileSync } from "node:child_process";
import { mkdirSync, renameSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = join(root, "src/dns/replay.c");
const out = join(root, "build/dns-replay.node");
const mtime = (path) => {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
};

if (mtime(out) > Math.max(mtime(source), mtime(fileURLToPath(import.meta.url)))) process.exit(0);

const headers = createRequire(import.meta.url)("node-api-headers").include_dir;
const cc = process.env.CC || "cc";
mkdirSync(dirname(out), { recursive: true });
const tmp = `${out}.${process.pid}`;
try {
  execFileSync(cc, ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared", "-pthread", "-DNAPI_VERSION=8", `-I${headers}`, "-o", tmp, source], {
    stdio: "inherit",
  });
} catch (e) {
  console.error(`@vipmesh/agent: cannot build ${source} with ${cc} (apt-get install gcc libc6-dev): ${e.message}`);
  process.exit(1);
}
renameSync(tmp, out); // whole or not at all: a half-written addon is never loaded
