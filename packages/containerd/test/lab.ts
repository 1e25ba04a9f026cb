// A throwaway world for one test file: a dir, network namespaces and cgroups
// with unique names, and a private containerd; all removed by cleanup(), which
// a test calls in afterAll even when it failed half-way.

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, rmSync, rmdirSync } from "node:fs";
import { type ContainerdDaemon, mountsUnder, shimsOf, startContainerd } from "../src/index.ts";

export class TestLab {
  readonly id = `vmct${randomBytes(3).toString("hex")}`;
  readonly dir = `/tmp/${this.id}`;
  readonly cgroupParent = `/${this.id}`;
  private readonly netnses: string[] = [];
  daemon: ContainerdDaemon | undefined;

  /** A network namespace named <id>-<suffix>, with lo up. */
  netns(suffix: string): string {
    const name = `${this.id}-${suffix}`;
    execFileSync("ip", ["netns", "add", name]);
    this.netnses.push(name);
    this.inNetns(name, ["ip", "link", "set", "lo", "up"]);
    return name;
  }

  inNetns(netns: string, argv: string[], timeoutMs = 10_000): string {
    return execFileSync("ip", ["netns", "exec", netns, ...argv], { encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "pipe"] });
  }

  async start(): Promise<ContainerdDaemon> {
    mkdirSync(this.dir, { recursive: true });
    this.daemon = await startContainerd({ dir: `${this.dir}/containerd`, netns: this.netns("cd") });
    return this.daemon;
  }

  ctr(...args: string[]): string {
    if (!this.daemon) throw new Error("containerd is not started");
    return execFileSync("ctr", ["-a", this.daemon.socket, ...args], { encoding: "utf8" });
  }

  async cleanup(): Promise<void> {
    const errors: string[] = [];
    try {
      await this.daemon?.stop();
    } catch (err) {
      errors.push(`stop containerd: ${(err as Error).message}`);
    }
    for (const ns of this.netnses.reverse()) {
      try {
        execFileSync("ip", ["netns", "del", ns], { stdio: "ignore" });
      } catch {
        errors.push(`netns ${ns} could not be deleted`);
      }
    }
    for (const ctrl of existsSync("/sys/fs/cgroup") ? readdirSync("/sys/fs/cgroup") : []) {
      const parent = `/sys/fs/cgroup/${ctrl}${this.cgroupParent}`;
      if (!existsSync(parent)) continue;
      for (const child of readdirSync(parent, { withFileTypes: true })) if (child.isDirectory()) rmdirQuiet(`${parent}/${child.name}`);
      rmdirQuiet(parent);
    }
    if (this.daemon && shimsOf(this.daemon.socket).length) errors.push("shims are still running");
    if (mountsUnder(this.dir).length) errors.push(`still mounted: ${mountsUnder(this.dir).join(", ")}`);
    else rmSync(this.dir, { recursive: true, force: true });
    if (errors.length) throw new Error(`cleanup: ${errors.join("; ")}`);
  }
}

function rmdirQuiet(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    // busy or gone: the test's own assertions say why
  }
}
