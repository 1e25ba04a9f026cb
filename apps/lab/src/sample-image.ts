// The lab's sample image, built here from this machine's busybox-static (no
// registry is reachable): busybox httpd on port 80 whose page, a CGI, answers
// as the whoami workload does (Hostname, Task — the hostname, the short task
// ID, when the task's ID is not in its environment —, Service, IP lines,
// RemoteAddr, the request line and headers), so that the demo and the tests
// read it alike, and logs a line per page on stderr.
// /cgi-bin/pid1 prints PID 1's command line (the container's own PID
// namespace), /health answers "ok", /etc/vipmesh-image says which image this is.

import { buildImageArchive } from "@vipmesh/containerd/build";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** The image's name: what `vipmesh service create --image` names. */
export const SAMPLE_IMAGE = "vipmesh.local/collabweb:1";
/** Where busybox-static is (Debian's busybox-static package). */
export const BUSYBOX = "/bin/busybox";
/** The port its httpd listens on, as whoami's `--port 80` in the demo. */
export const SAMPLE_PORT = 80;
/** The marker file's content: the image's filesystem is the one that answers. */
export const SAMPLE_MARKER = `${SAMPLE_IMAGE}\n`;

const CGI_HEADER = `printf 'Content-Type: text/plain; charset=utf-8\\r\\n\\r\\n'`;

/** The page: whoami's lines, from busybox's applets and httpd's CGI variables. */
const INDEX_CGI = `#!/bin/sh
${CGI_HEADER}
echo "Hostname: $(hostname)"
echo "Task: \${VIPMESH_TASK_ID:-$(hostname)}"
echo "Service: \${VIPMESH_SERVICE:--}"
ip -o addr show | awk '{ split($4, a, "/"); print "IP: " a[1] }'
echo "RemoteAddr: $REMOTE_ADDR:$REMOTE_PORT"
echo "$REQUEST_METHOD $REQUEST_URI $SERVER_PROTOCOL"
echo "Host: $HTTP_HOST"
[ -n "$HTTP_USER_AGENT" ] && echo "User-Agent: $HTTP_USER_AGENT"
# the access log: a line per page on the container's stderr, for service logs
echo "$REMOTE_ADDR:$REMOTE_PORT $REQUEST_METHOD $REQUEST_URI 200" >&2
exit 0
`;

/** PID 1's command line, its arguments separated by spaces. */
const PID1_CGI = `#!/bin/sh
${CGI_HEADER}
tr '\\0' ' ' </proc/1/cmdline | sed 's/ $//'
echo
`;

const file = (path: string, content: string | Buffer, mode = 0o644) => ({ path, mode, content: Buffer.from(content) });
const dir = (path: string, mode = 0o755) => ({ path, mode, dir: true });

/** busybox's applets, each a symlink in /bin, as busybox's own images have them. */
function applets(): string[] {
  return execFileSync(BUSYBOX, ["--list"], { encoding: "utf8" })
    .split("\n")
    .filter((a) => /^[a-z0-9_.-]+$/.test(a) && a !== "busybox");
}

/** The sample image as a tarball (docker-archive, as `docker save` writes; or OCI image layout). */
export function sampleImageArchive(format: "docker-archive" | "oci" = "docker-archive"): Buffer {
  let busybox: Buffer;
  try {
    busybox = readFileSync(BUSYBOX);
  } catch {
    throw new Error(`the sample image is built from ${BUSYBOX}, which is missing: install Debian's busybox-static (scripts/bootstrap.sh does)`);
  }
  return buildImageArchive({
    name: SAMPLE_IMAGE,
    format,
    files: [
      ...["bin", "etc", "www", "www/cgi-bin", "proc", "sys", "dev", "root"].map((d) => dir(d)),
      dir("tmp", 0o1777),
      file("bin/busybox", busybox, 0o755),
      ...applets().map((a) => ({ path: `bin/${a}`, mode: 0o777, symlink: "busybox" })),
      file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"),
      file("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
      file("etc/vipmesh-image", SAMPLE_MARKER),
      file("www/health", "ok"),
      file("www/cgi-bin/index.cgi", INDEX_CGI, 0o755),
      file("www/cgi-bin/pid1", PID1_CGI, 0o755),
    ],
    config: {
      // -f: in the foreground, as the container's PID 1
      entrypoint: ["/bin/httpd", "-f", "-v", "-h", "/www"],
      cmd: ["-p", `0.0.0.0:${SAMPLE_PORT}`],
      env: ["PATH=/bin"],
      workingDir: "/www",
      // httpd sets no SIGTERM handler, and a PID 1 gets no signal it does not handle: SIGTERM would
      // only wait out the stop grace; it has nothing to flush, so it stops at once (Docker's STOPSIGNAL)
      stopSignal: "SIGKILL",
      labels: { "org.opencontainers.image.title": "vipmesh sample: busybox httpd answering as whoami" },
    },
  });
}
