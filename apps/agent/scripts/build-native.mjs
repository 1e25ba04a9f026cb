// Builds the agent's C parts with the system's C compiler: the embedded DNS's
// UDP path (src/dns/replay.c, a Node-API addon) into build/dns-replay.node, and
// the task confinement helper (src/tasks/confine.c) into build/vipmesh-confine.
// Each is rebuilt only when older than its source. Run by `npm ci` (the
// package's install script) and before the package's tests.

import { execFileSync } from "node:child_process";
import { mkdirSync, renameSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cc = process.env.CC || "cc";
const mtime = (path) => {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return 0;
  }
};

function build(source, out, flags) {
  if (mtime(out) > Math.max(mtime(source), mtime(fileURLToPath(import.meta.url)))) return;
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}`;
  try {
    execFileSync(cc, ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", ...flags, "-o", tmp, source], { stdio: "inherit" });
  } catch (e) {
    console.error(`@vipmesh/agent: cannot build ${source} with ${cc} (apt-get install gcc libc6-dev): ${e.message}`);
    process.exit(1);
  }
  renameSync(tmp, out); // whole or not at all: a half-written binary is never run
}

const headers = createRequire(import.meta.url)("node-api-headers").include_dir;
build(join(root, "src/dns/replay.c"), join(root, "build/dns-replay.node"), ["-fPIC", "-shared", "-pthread", "-DNAPI_VERSION=8", `-I${headers}`]);
build(join(root, "src/tasks/confine.c"), join(root, "build/vipmesh-confine"), []);
