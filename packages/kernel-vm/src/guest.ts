// For scripts that run inside the VM (they are root in a throwaway kernel):
// the small networks their checks need.

import { execFileSync } from "node:child_process";

const sh = (...cmd: string[]) => execFileSync(cmd[0]!, cmd.slice(1), { encoding: "utf8" });

export interface GuestNamespace {
  name: string;
  /** eth0's address, CIDR. */
  addr: string;
  /** Runs busybox httpd on :80 answering its own name. */
  serve?: boolean;
}

/** Namespaces joined by one bridge `br0`, each with eth0 and lo up. */
export function bridgedNamespaces(spaces: GuestNamespace[]): void {
  sh("ip", "link", "add", "br0", "type", "bridge");
  sh("ip", "link", "set", "br0", "up");
  for (const { name, addr, serve } of spaces) {
    const inNs = (...cmd: string[]) => sh("ip", "netns", "exec", name, ...cmd);
    sh("ip", "netns", "add", name);
    sh("ip", "link", "add", `h${name}`, "type", "veth", "peer", "name", "eth0", "netns", name);
    sh("ip", "link", "set", `h${name}`, "master", "br0", "up");
    inNs("ip", "addr", "add", addr, "dev", "eth0");
    inNs("ip", "link", "set", "eth0", "up");
    inNs("ip", "link", "set", "lo", "up");
    if (serve) {
      sh("mkdir", "-p", `/run/www/${name}`);
      sh("sh", "-c", `echo ${name} > /run/www/${name}/index.html`);
      inNs("busybox", "httpd", "-p", "80", "-h", `/run/www/${name}`);
    }
  }
}
