// A sample image for tests: busybox-static with an httpd whose CGI
// /cgi-bin/whoami prints the container's hostname and IPv4 addresses.

import { readFileSync } from "node:fs";
import { type ImageFile, buildImageArchive } from "../src/index.ts";

const BUSYBOX = "/bin/busybox";
const APPLETS = ["sh", "httpd", "hostname", "ip", "cat", "dd", "sleep", "echo", "ls", "wget", "true", "false", "kill", "ps"];

const WHOAMI_CGI = `#!/bin/sh
echo "Content-Type: text/plain"
echo ""
echo "hostname: $(hostname)"
ip -4 -o addr show | while read -r _n _ifc _fam addr _rest; do echo "ip: \${addr%/*}"; done
`;

export const SAMPLE_ENTRYPOINT = ["/bin/httpd", "-f", "-p", "80", "-h", "/www"];

export function sampleFiles(): ImageFile[] {
  return [
    { path: "bin", mode: 0o755, dir: true },
    { path: "bin/busybox", mode: 0o755, content: readFileSync(BUSYBOX) },
    ...APPLETS.map((a) => ({ path: `bin/${a}`, mode: 0o777, symlink: "busybox" })),
    { path: "etc", mode: 0o755, dir: true },
    { path: "etc/passwd", mode: 0o644, content: Buffer.from("root:x:0:0:root:/root:/bin/sh\n") },
    { path: "etc/group", mode: 0o644, content: Buffer.from("root:x:0:\n") },
    { path: "proc", mode: 0o755, dir: true },
    { path: "sys", mode: 0o755, dir: true },
    { path: "dev", mode: 0o755, dir: true },
    { path: "tmp", mode: 0o1777, dir: true },
    { path: "www", mode: 0o755, dir: true },
    { path: "www/index.html", mode: 0o644, content: Buffer.from("hello from the sample image\n") },
    { path: "www/cgi-bin", mode: 0o755, dir: true },
    { path: "www/cgi-bin/whoami", mode: 0o755, content: Buffer.from(WHOAMI_CGI) },
  ];
}

export function sampleArchive(name: string, format: "docker-archive" | "oci"): Buffer {
  return buildImageArchive({
    name,
    format,
    files: sampleFiles(),
    config: { entrypoint: SAMPLE_ENTRYPOINT, cmd: [], env: ["PATH=/bin"], workingDir: "/", labels: { "org.vipmesh.sample": "whoami" } },
  });
}
