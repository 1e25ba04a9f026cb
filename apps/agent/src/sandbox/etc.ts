// A sandbox's own /etc files: `ip netns exec` bind-mounts /etc/netns/NAME/*
// over /etc/*, so each sandbox gets its own hosts and resolv.conf.

import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { addrOf } from "@vipmesh/core";
import type { SandboxPlan } from "./types.ts";

export const NETNS_ETC = "/etc/netns";

/** hosts (its own addresses under its hostname) and resolv.conf (the embedded DNS), by file name. */
function sandboxEtcFiles(plan: SandboxPlan): Record<string, string> {
  const own = plan.interfaces.map((i) => `${addrOf(i.addr)}\t${plan.hostname}`).join("\n");
  return {
    hosts: `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${own}\n`,
    // ndots:0 so that a bare service name is asked as it is, first
    "resolv.conf": "nameserver 127.0.0.11\noptions ndots:0\n",
  };
}

export function writeSandboxEtc(etcDir: string, plan: SandboxPlan): void {
  const dir = join(etcDir, plan.name);
  mkdirSync(dir, { recursive: true });
  for (const [file, text] of Object.entries(sandboxEtcFiles(plan))) writeFileSync(join(dir, file), text);
}

export const removeSandboxEtc = (etcDir: string, name: string): void => rmSync(join(etcDir, name), { recursive: true, force: true });
