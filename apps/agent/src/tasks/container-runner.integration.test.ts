// Kernel and containerd test: container tasks through ContainerRunner, in a
// private containerd (started in a network namespace of the test's own) with
// an image built here (busybox httpd): the task in its sandbox answers HTTP,
// its PID 1 is the image's, its hostname and /etc are the sandbox's, its log
// is the process tasks' format, exit codes, an OOM kill's reason, SIGTERM then
// SIGKILL, adoption by a new runner, forget leaving nothing, health checks
// inside. Root; run under `flock /tmp/vipmesh-kernel.lock`.

import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { parseTaskLogLine } from "@vipmesh/api";
import { buildImageArchive, Containerd, type ContainerdDaemon, mountsUnder, shimsOf, startContainerd } from "@vipmesh/containerd";
import { type ContainerSpec, effectiveCapabilities } from "@vipmesh/core";
import { waitFor } from "@vipmesh/testing";
import { containerdDescribe } from "@vipmesh/testing/kernel";
import { afterAll, beforeAll, expect, it } from "vitest";
import { containerInitUser, isTaskInit } from "./confine.ts";
import { ContainerRunner } from "./container-runner.ts";
import type { ExitReport, Preparation, StartSpec } from "./runtime.ts";

const ID = `vmcr${randomBytes(3).toString("hex")}`;
const DIR = `/tmp/${ID}`;
const SANDBOX = `${ID}-sb`;
const CLIENT = `${ID}-cl`;
const CONTAINERD_NETNS = `${ID}-cd`;
const CGROUP_PARENT = `${ID}-tasks`;
const IMAGE = "vipmesh/cr-test:1";
const SERVER_IP = "10.231.9.2";
const CLIENT_IP = "10.231.9.1";
const GRACE_MS = 1500;

const CGI = `#!/bin/sh
echo "Content-Type: text/plain"
echo ""
echo "hostname: $(hostname)"
`;

function imageArchive(): Buffer {
  const applets = ["sh", "httpd", "hostname", "cat", "dd", "sleep", "echo", "grep", "test", "true", "id", "wget"];
  return buildImageArchive({
    name: IMAGE,
    format: "docker-archive",
    files: [
      { path: "bin", mode: 0o755, dir: true },
      { path: "bin/busybox", mode: 0o755, content: readFileSync("/bin/busybox") },
      ...applets.map((a) => ({ path: `bin/${a}`, mode: 0o777, symlink: "busybox" })),
      { path: "etc", mode: 0o755, dir: true },
      { path: "etc/passwd", mode: 0o644, content: Buffer.from("root:x:0:0:root:/root:/bin/sh\nwww:x:33:34:www:/www:/bin/sh\n") },
      { path: "etc/group", mode: 0o644, content: Buffer.from("root:x:0:\nwww:x:34:\nweb:x:35:www\n") },
      { path: "proc", mode: 0o755, dir: true },
      { path: "sys", mode: 0o755, dir: true },
      { path: "dev", mode: 0o755, dir: true },
      { path: "tmp", mode: 0o1777, dir: true },
      { path: "www", mode: 0o755, dir: true },
      { path: "www/index.html", mode: 0o644, content: Buffer.from("hello\n") },
      { path: "www/cgi-bin", mode: 0o755, dir: true },
      { path: "www/cgi-bin/whoami", mode: 0o755, content: Buffer.from(CGI) },
    ],
    config: { entrypoint: ["/bin/httpd", "-f", "-p", "80", "-h", "/www"], cmd: [], env: ["PATH=/bin", "FROM_IMAGE=1"], workingDir: "/www" },
  });
}

const ip = (...args: string[]) => execFileSync("ip", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const inNetns = (ns: string, ...args: string[]) => ip("netns", "exec", ns, ...args);

containerdDescribe("ContainerRunner (containerd, runc)", () => {
  let daemon: ContainerdDaemon | undefined;
  let cd: Containerd;
  let runner: ContainerRunner;
  const exits = new Map<string, ExitReport>();
  const stateDir = join(DIR, "agent");
  const etcDir = join(DIR, "netns-etc");

  const open = async (client: Containerd) =>
    ContainerRunner.open({ containerd: client, stateDir, stopGraceMs: GRACE_MS, cgroupParent: CGROUP_PARENT, etcDir, log: () => {} });

  beforeAll(async () => {
    mkdirSync(DIR, { recursive: true });
    for (const ns of [CONTAINERD_NETNS, SANDBOX, CLIENT]) {
      ip("netns", "add", ns);
      inNetns(ns, "ip", "link", "set", "lo", "up");
    }
    // the client reaches the sandbox over a veth; nothing in the root namespace
    inNetns(CLIENT, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", SANDBOX);
    inNetns(CLIENT, "ip", "addr", "add", `${CLIENT_IP}/24`, "dev", "eth0");
    inNetns(CLIENT, "ip", "link", "set", "eth0", "up");
    inNetns(SANDBOX, "ip", "addr", "add", `${SERVER_IP}/24`, "dev", "eth0");
    inNetns(SANDBOX, "ip", "link", "set", "eth0", "up");
    // the sandbox's own /etc files, as the network reconciler writes them
    mkdirSync(join(etcDir, SANDBOX), { recursive: true });
    writeFileSync(join(etcDir, SANDBOX, "resolv.conf"), "nameserver 127.0.0.11\noptions ndots:0\n");
    writeFileSync(join(etcDir, SANDBOX, "hosts"), `127.0.0.1\tlocalhost\n${SERVER_IP}\tweb-1\n`);
    daemon = await startContainerd({ dir: join(DIR, "containerd"), netns: CONTAINERD_NETNS });
    cd = await Containerd.connect({ socket: daemon.socket, namespace: ID });
    await cd.importArchive(Readable.from([imageArchive()]));
    runner = await open(cd);
    expect(runner.adopt()).toEqual({ adopted: [], lost: [] });
    runner.on("exit", (e) => exits.set(e.taskId, e));
  }, 60_000);

  afterAll(async () => {
    const errors: string[] = [];
    runner?.close();
    cd?.close();
    await daemon?.stop().catch((err) => errors.push(`containerd: ${err.message}`));
    for (const ns of [CLIENT, SANDBOX, CONTAINERD_NETNS]) {
      try {
        ip("netns", "del", ns);
      } catch {}
    }
    removeCgroupParents();
    if (daemon && shimsOf(daemon.socket).length) errors.push("shims still run");
    if (mountsUnder(DIR).length) errors.push(`still mounted: ${mountsUnder(DIR).join(", ")}`);
    else rmSync(DIR, { recursive: true, force: true });
    expect(errors).toEqual([]);
  }, 60_000);

  const spec = (taskId: string, container: Partial<ContainerSpec>, memoryBytes = 0): StartSpec => ({
    taskId,
    serviceName: "web",
    sandbox: SANDBOX,
    hostname: `host-${taskId}`,
    command: [],
    env: [],
    container: { image: IMAGE, command: [], env: [], ...container },
    confinement: { user: container.user ?? "", capabilities: effectiveCapabilities(), pids: 512, memoryBytes, nanoCpus: 0 },
  });
  const prepared = (taskId: string, image: string): Promise<Preparation> =>
    waitFor(`${image} prepared`, () => {
      const p = runner.prepare({ taskId, container: { image, command: [], env: [] } }, () => {});
      return p.state === "preparing" ? undefined : p;
    }, 20_000);
  const exited = (taskId: string) => waitFor(`${taskId} to exit`, () => exits.get(taskId), 20_000);
  const logLines = (taskId: string) =>
    readFileSync(runner.logFile(taskId), "utf8").split(/(?<=\n)/).map(parseTaskLogLine);
  const httpGet = (path: string) =>
    waitFor(`GET ${path}`, () => {
      try {
        return inNetns(CLIENT, "timeout", "5", "/bin/busybox", "wget", "-q", "-O", "-", `http://${SERVER_IP}${path}`);
      } catch {
        return undefined;
      }
    }, 10_000, 100);

  it("readies an image it has, and rejects one it cannot get, naming it and why", async () => {
    expect(await prepared("p1", IMAGE)).toEqual({ state: "ready" });
    const failed = await prepared("p2", "vipmesh/not-here:1");
    expect(failed).toMatchObject({ state: "failed", error: expect.stringContaining('image "docker.io/vipmesh/not-here:1" cannot be pulled: ') });
    expect(runner.prepare({ taskId: "p3", container: { image: "Bad Name", command: [], env: [] } }, () => {})).toMatchObject({
      state: "failed",
      error: expect.stringContaining('image "Bad Name" is not a valid reference'),
    });
  }, 30_000);

  it("runs the image's entrypoint as PID 1 in the sandbox, with its hostname and the sandbox's /etc files; health checks run inside", async () => {
    await runner.start(spec("web1", {}));
    expect(runner.isRunning("web1")).toBe(true);
    expect(await httpGet("/cgi-bin/whoami")).toContain("hostname: host-web1");
    const pid = (await cd.task("web1"))!.pid;
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean)).toEqual(["/bin/httpd", "-f", "-p", "80", "-h", "/www"]);
    expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/^NSpid:\s+\d+\s+1$/m);
    // confined: seccomp's filter, no_new_privs, Docker's capabilities (no CAP_SYS_ADMIN: bit 21)
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    expect(status).toMatch(/^Seccomp:\s+2$/m);
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(BigInt(`0x${status.match(/^CapEff:\s+(\w+)$/m)![1]}`) & (1n << 21n)).toBe(0n);
    // what `vipmesh exec` finds in the sandbox, and enters as
    expect(isTaskInit(pid) && containerInitUser(pid)).toBe("0:0");
    expect(readFileSync(`/proc/${pid}/root/etc/resolv.conf`, "utf8")).toContain("nameserver 127.0.0.11");
    expect(readFileSync(`/proc/${pid}/root/etc/hostname`, "utf8")).toBe("host-web1\n");
    expect(readFileSync(`/proc/${pid}/environ`, "utf8").split("\0")).toEqual(expect.arrayContaining(["FROM_IMAGE=1", "HOSTNAME=host-web1"]));
    // the check sees the container's root (/www is only in the image) and the sandbox's resolv.conf, at its working dir
    const check = (test: string) => runner.check({ taskId: "web1", sandbox: SANDBOX, test: [test], timeoutMs: 5000 });
    expect(await check("test -f /www/index.html && grep -q 127.0.0.11 /etc/resolv.conf && test \"$(hostname)\" = host-web1")).toBe(true);
    expect(await check("test -f /etc/ssh/sshd_config || test -d /home")).toBe(false);
    expect(await check("false")).toBe(false);
  }, 30_000);

  it("writes the task's stdout and stderr to its log as process tasks' lines, and reports its exit status", async () => {
    await runner.start(spec("out1", { command: ["sh", "-c", "echo hello; echo oops >&2; pwd; exit 3"] }));
    expect(await exited("out1")).toEqual({ taskId: "out1", code: 3, signal: null });
    await waitFor("the log's last line", () => logLines("out1").length >= 3);
    const lines = logLines("out1");
    expect(lines.map((l) => `${l.stream} ${l.text}`).sort()).toEqual(["stderr oops", "stdout /www", "stdout hello"]);
    for (const l of lines) expect(l.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
  }, 30_000);

  it("runs as the image's named user, resolved from its /etc/passwd and /etc/group", async () => {
    await runner.start(spec("user1", { command: ["sh", "-c", "id; sleep 100"], user: "www" }));
    const pid = (await cd.task("user1"))!.pid;
    expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/^Uid:\s+33\s+33\s+33\s+33$/m);
    expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/^Gid:\s+34\s+34\s+34\s+34$/m);
    expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/^CapEff:\s+0+$/m);
    expect(containerInitUser(pid)).toBe("33:34");
    expect(await runner.check({ taskId: "user1", sandbox: SANDBOX, test: ['test "$(id -u):$(id -g)" = 33:34'], timeoutMs: 5000 })).toBe(true);
    await runner.stop("user1");
    runner.forget("user1");
  }, 30_000);

  it("says an OOM kill is one, naming the memory limit", async () => {
    await runner.start(spec("oom1", { command: ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"] }, 32 * 1024 * 1024));
    const exit = await exited("oom1");
    expect(exit.reason).toBe("OOM killed: the task used more than its memory limit of 32 MiB");
    expect(exit.code).toBe(137);
  }, 30_000);

  it("stops with SIGTERM, then SIGKILL after the grace, and removes the container and its snapshot", async () => {
    await runner.start(spec("term1", { command: ["sh", "-c", "trap 'echo got TERM' TERM; while true; do sleep 0.1; done"] }));
    await waitFor("the task's shell", async () => (await cd.task("term1"))?.status === "running");
    await new Promise((r) => setTimeout(r, 300)); // its trap set
    await runner.stop("term1");
    expect(runner.isRunning("term1")).toBe(false);
    expect(logLines("term1").map((l) => l.text)).toContain("got TERM");
    expect(await cd.task("term1")).toBeUndefined();
    expect((await cd.containers()).map((c) => c.id)).not.toContain("term1");
    expect(await cd.snapshots()).not.toContain("term1");
    expect(exits.has("term1")).toBe(false); // a stop is not an exit to report
    runner.forget("term1");
  }, 30_000);

  it("is adopted by a new runner while it runs; those that ended are told as they ended; forget leaves no container or snapshot", async () => {
    runner.close();
    const again = await Containerd.connect({ socket: daemon!.socket, namespace: ID });
    const next = await open(again);
    try {
      const told: ExitReport[] = [];
      next.on("exit", (e) => told.push(e));
      const found = next.adopt();
      expect(found).toEqual({ adopted: ["web1"], lost: [] });
      await waitFor("the ends seen before", () => told.length === 2);
      expect(told.sort((a, b) => a.taskId.localeCompare(b.taskId))).toEqual([exits.get("oom1"), exits.get("out1")]);
      told.length = 0;
      expect(next.isRunning("web1")).toBe(true);
      expect(await httpGet("/index.html")).toBe("hello\n");
      expect(await next.check({ taskId: "web1", sandbox: SANDBOX, test: ["test -f /www/index.html"], timeoutMs: 5000 })).toBe(true);
      await cd.kill("web1", "SIGKILL");
      expect(await waitFor("web1's end", () => told[0])).toEqual({ taskId: "web1", code: 137, signal: null });
      for (const id of ["web1", "oom1", "out1"]) next.forget(id);
      await waitFor("no container left", async () => (await again.containers()).length === 0 && (await again.snapshots()).every((s) => !["web1", "oom1", "out1"].includes(s)));
      expect(existsSync(next.logFile("web1"))).toBe(true); // the log stays, for `service logs`
    } finally {
      next.close();
      again.close();
    }
  }, 60_000);
});

/** The cgroup directories runc made for the test's containers, in every hierarchy: empty by now. */
function removeCgroupParents(): void {
  const walk = (dir: string): void => {
    let entries: string[] = [];
    try {
      entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => join(dir, e.name));
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.endsWith(`/${CGROUP_PARENT}`)) {
        for (const child of readdirSync(e, { withFileTypes: true })) if (child.isDirectory()) rmdirQuiet(join(e, child.name));
        rmdirQuiet(e);
      } else if (e.split("/").length < 9) walk(e);
    }
  };
  walk("/sys/fs/cgroup");
}

function rmdirQuiet(path: string): void {
  try {
    rmdirSync(path);
  } catch {}
}
