// Namespaces for one kernel test: uniquely named, all removed afterwards,
// failure or not. Nothing here touches the root namespace's interfaces.

import { randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { NETNS_ETC } from "../src/sandbox/etc.ts";

/** Every prefix handed out in this process, to check at the end that nothing is left. */
export const usedPrefixes: string[] = [];

export function listNamespaces(): string[] {
  const text = execFileSync("ip", ["-j", "netns", "list"]).toString().trim();
  return text ? (JSON.parse(text) as { name: string }[]).map((n) => n.name) : [];
}

export class TestNamespaces {
  /** vmt-<random>-: every namespace of the test starts with it, including sandboxes made by drivers. */
  readonly prefix = `vmt-${randomBytes(3).toString("hex")}-`;

  constructor() {
    usedPrefixes.push(this.prefix);
  }

  /** A name under this test's prefix, not yet made. */
  name(suffix: string): string {
    return `${this.prefix}${suffix}`;
  }

  /** Makes a namespace with lo up. */
  add(suffix: string): string {
    const name = this.name(suffix);
    execFileSync("ip", ["netns", "add", name]);
    execFileSync("ip", ["-n", name, "link", "set", "lo", "up"]);
    return name;
  }

  /** Deletes every namespace under the prefix (the test's own and those its drivers made), and their /etc/netns files. */
  cleanup(): void {
    for (const name of listNamespaces()) {
      if (name.startsWith(this.prefix)) execFileSync("ip", ["netns", "del", name]);
    }
    const etc = existsSync(NETNS_ETC) ? readdirSync(NETNS_ETC) : [];
    for (const name of etc) if (name.startsWith(this.prefix)) rmSync(join(NETNS_ETC, name), { recursive: true, force: true });
  }
}

/**
 * Two "nodes" joined by a veth "fabric", 192.168.77.1 and .2/24. The link is
 * made inside node 1 with its peer put straight into node 2: the root
 * namespace never holds it.
 */
export function twoNodes(ns: TestNamespaces): { n1: string; n2: string; addr1: string; addr2: string } {
  const n1 = ns.add("n1");
  const n2 = ns.add("n2");
  const batch = (netns: string, lines: string[]) => execFileSync("ip", ["-n", netns, "-batch", "-"], { input: `${lines.join("\n")}\n` });
  batch(n1, [`link add fab0 type veth peer name fab0 netns ${n2}`, "addr add 192.168.77.1/24 dev fab0", "link set fab0 up"]);
  batch(n2, ["addr add 192.168.77.2/24 dev fab0", "link set fab0 up"]);
  return { n1, n2, addr1: "192.168.77.1", addr2: "192.168.77.2" };
}
