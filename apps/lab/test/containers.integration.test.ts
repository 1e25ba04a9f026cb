// Tasks with an image run as containers (issue 22), on one 3-node lab whose
// nodes each run their own containerd: the lab's sample image (busybox httpd
// answering as whoami, apps/lab/src/sample-image.ts) is loaded with `vipmesh
// image load`; a 3-replica service of it answers through its VIP, the routing
// mesh and tasks.<svc> as a process service does; a container has its own PID
// namespace, the image's filesystem and the task's hostname; a memory limit
// kills (OOM) and the task is replaced; a missing image is the task's error;
// logs flow; an agent restart keeps containers and connections; `service rm`
// leaves no container, snapshot or namespace. Asserts what the CLI prints and
// what containerd and the kernel hold.

import { call, type wire } from "@vipmesh/api";
import { addrOf, taskHostname } from "@vipmesh/core";
import { waitFor as waitForBase } from "@vipmesh/testing";
import { containerdDescribe } from "@vipmesh/testing/kernel";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { agentPid, CONTAINERD_NAMESPACE, killAgent, listNamespaces } from "../src/lab.ts";
import { SAMPLE_IMAGE, SAMPLE_MARKER } from "../src/sample-image.ts";
import { client, lab, sharedLab } from "./shared-lab.ts";

const name = `c${randomBytes(3).toString("hex")}`;
const VIPMESH = fileURLToPath(new URL("../../../bin/vipmesh", import.meta.url));
const ECHO_CLIENT = fileURLToPath(new URL("./echo-client.mjs", import.meta.url));
const CONTAINER_PROBE = fileURLToPath(new URL("./hostile-container-probe.sh", import.meta.url));
/** The attempts hostile-container-probe.sh makes. */
const PROBE_ATTEMPTS = 17;
const MiB = 1024 * 1024;
/** A case's time (explicit: run from the repo root, the lab's vitest config is not the one read). */
const CASE_MS = 180_000;

/** The lab's pace: agents sync, containerd starts shims; checked every 200 ms. */
const waitFor = <T>(what: string, check: () => T | Promise<T>, timeoutMs = 60_000) => waitForBase(what, check, timeoutMs, 200);

/** The CLI against the lab's manager, as its admin. */
const vipmesh = (...args: string[]) => spawnSync(VIPMESH, ["--host", lab.socket, "--tls-dir", lab.tlsDir, ...args], { encoding: "utf8", timeout: 120_000 });
function vipmeshOk(...args: string[]): string {
  const r = vipmesh(...args);
  if (r.status !== 0) throw new Error(`vipmesh ${args.join(" ")}: exit ${r.status}\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** containerd's own CLI on a node's containerd, in the agents' namespace. */
function ctr(host: string, ...args: string[]): string {
  const socket = lab.nodes.find((n) => n.hostname === host)?.containerdSocket;
  if (!socket) throw new Error(`${host} runs no containerd of the lab's`);
  return execFileSync("ctr", ["-a", socket, "-n", CONTAINERD_NAMESPACE, ...args], { encoding: "utf8", timeout: 30_000 });
}
const rows = (table: string) => table.split("\n").slice(1).map((l) => l.trim().split(/\s+/)).filter((r) => r[0]);
/** A node's running container tasks: container ID → its init's host PID. */
const containerPids = (host: string) => new Map(rows(ctr(host, "tasks", "ls")).map(([id, pid]) => [id!, Number(pid)]));

const lines = (s: string) => s.split("\n").map((l) => l.trim()).filter(Boolean);
const sandboxOf = (t: wire.Task) => listNamespaces().find((ns) => ns.startsWith(lab.prefix) && ns.endsWith(t.id));
const inNetns = (netns: string, ...cmd: string[]) => spawnSync("ip", ["netns", "exec", netns, ...cmd], { encoding: "utf8", timeout: 15_000 }).stdout;
const get = (netns: string, url: string) => inNetns(netns, "curl", "-s", "--max-time", "2", url);
const dig = (netns: string, host: string) => lines(inNetns(netns, "dig", "+short", "+tries=1", "+time=2", host)).sort();
/** whoami's `Key: value` line of an answer. */
const field = (answer: string, key: string) => new RegExp(`^${key}: (.*)$`, "m").exec(answer)?.[1];

async function tasksOf(service: string): Promise<wire.Task[]> {
  return (await call(client, "listTasks", { service })).tasks;
}
/** The service's tasks once `n` run and no other is meant to. */
const running = (service: string, n: number) =>
  waitFor(`${n} running tasks of ${service}`, async () => {
    const tasks = await tasksOf(service);
    const up = tasks.filter((t) => t.desiredState === "running" && t.status?.state === "running");
    const others = tasks.filter((t) => t.desiredState === "running" && t.status?.state !== "running");
    return up.length === n && others.length === 0 ? up : undefined;
  }, 90_000);
const taskIp = (t: wire.Task) => addrOf(t.networks.find((a) => a.networkId === cnet)!.addresses[0]!);

/** The task an answer came from, by its Hostname line (the task's hostname is its short ID for both runtimes). */
const answeredBy = (tasks: wire.Task[], answer: string) => tasks.find((t) => field(answer, "Hostname") === taskHostname({ id: t.id, spec: { container: { hostname: "" } } as never }));

let cnet = "";
let box: wire.Task;
let imageDir = "";

/** Processes whose command line names the lab's directory: agents, the manager, containerds, shims. */
const labProcesses = (): string[] =>
  readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .flatMap((p) => {
      try {
        const cmdline = readFileSync(`/proc/${p}/cmdline`, "utf8");
        return cmdline.includes(`/run/vipmesh/${name}/`) ? [`${p}: ${cmdline.replaceAll("\0", " ").slice(0, 160)}`] : [];
      } catch {
        return [];
      }
    });
const labMounts = () => readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter((l) => l.includes(`/run/vipmesh/${name}/`));

containerdDescribe("containers on a 3-node lab, one containerd per node", () => {
  // node3 states a capacity of its own (lab up --node-resources), the others what this machine has
  sharedLab({ name, nodes: 3, heartbeatMs: 1000, resourcesByNode: { node3: { nanoCpus: 1e9, memoryBytes: 512 * MiB } } }, () => {
    // after lab down: no containerd, shim or container process, and no rootfs mount of the lab's
    expect(labProcesses()).toEqual([]);
    expect(labMounts()).toEqual([]);
  });
  beforeAll(() => {
    imageDir = mkdtempSync(join(tmpdir(), "vipmesh-image-"));
  });
  afterAll(() => rmSync(imageDir, { recursive: true, force: true }));

  it("runs a containerd per node, in the node's namespace, each with its own socket; the nodes say they run containers, and the capacity the lab gave them", async () => {
    const sockets = lab.nodes.map((n) => n.containerdSocket);
    expect(new Set(sockets).size).toBe(3);
    for (const n of lab.nodes) {
      // the daemon behind the socket lives in the node's network namespace
      const pids = listNamespaces().includes(n.netns) ? lines(execFileSync("ip", ["netns", "pids", n.netns], { encoding: "utf8" })) : [];
      const daemons = pids.filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0]?.endsWith("containerd");
        } catch {
          return false;
        }
      });
      expect(daemons, `${n.hostname}'s containerd`).toHaveLength(1);
      expect(ctr(n.hostname, "version")).toMatch(/Server:\s+Version:/);
    }
    const { nodes } = await call(client, "listNodes", {});
    for (const node of nodes) expect(node.description?.runtimes, node.description?.hostname).toEqual(expect.arrayContaining(["process", "container"]));
    const node3 = nodes.find((n) => n.description?.hostname === "node3");
    expect(node3?.description?.resources).toMatchObject({ nanoCpus: 1e9, memoryBytes: 512 * MiB });
  }, CASE_MS);

  it("loads the sample image on every node: `vipmesh lab image` writes it, `vipmesh image load` sends it", () => {
    const file = join(imageDir, "collabweb.tar");
    expect(vipmeshOk("lab", "image", "--out", file)).toContain(SAMPLE_IMAGE);
    expect(statSync(file).size).toBeGreaterThan(MiB);
    vipmeshOk("image", "load", file);
    for (const n of lab.nodes) expect(lines(ctr(n.hostname, "images", "ls", "-q")), n.hostname).toContain(SAMPLE_IMAGE);
  }, CASE_MS);

  it("a 3-replica service of the image answers through its VIP, the routing mesh and tasks.<svc>, as a process service does", async () => {
    cnet = (await call(client, "createNetwork", { spec: { name: "cnet" } })).network!.id;
    const service = (svcName: string, container: object, published: number) =>
      call(client, "createService", {
        spec: {
          annotations: { name: svcName },
          taskTemplate: { container },
          replicated: { replicas: 3 },
          networks: [{ target: "cnet" }],
          endpointSpec: { ports: [{ targetPort: 80, publishedPort: published }] },
        },
      });
    await service("cweb", { image: SAMPLE_IMAGE }, 8080);
    await service("pweb", { command: ["vipmesh", "whoami", "--port", "80"] }, 8081);
    await call(client, "createService", { spec: { annotations: { name: "box" }, taskTemplate: { container: { command: ["sleep", "infinity"] } }, replicated: { replicas: 1 }, networks: [{ target: "cnet" }] } });
    [box] = (await running("box", 1)) as [wire.Task];
    const from = sandboxOf(box)!;

    for (const [svc, port] of [["cweb", 8080], ["pweb", 8081]] as const) {
      const tasks = await running(svc, 3);
      // spread over the three nodes, each in a sandbox of its own
      expect(new Set(tasks.map((t) => t.nodeId)).size, svc).toBe(3);
      const vip = addrOf((await call(client, "inspectService", { service: svc })).service!.endpoint!.virtualIps.find((v) => v.networkId === cnet)!.addr);
      await waitFor(`${svc} and tasks.${svc} in the embedded DNS`, () => dig(from, svc).join() === vip && dig(from, `tasks.${svc}`).join() === tasks.map(taskIp).sort().join());

      // through the VIP: every task answers, each with its own address
      const seen = new Set<string>();
      await waitFor(`all of ${svc}'s tasks through its VIP`, () => {
        const answer = get(from, `http://${svc}/`);
        const task = answeredBy(tasks, answer);
        if (task) {
          expect(answer, svc).toContain(`IP: ${taskIp(task)}\n`);
          expect(answer).toMatch(/^GET \/ HTTP\/1\.1$/m);
          seen.add(task.id);
        }
        return seen.size === 3;
      });

      // the routing mesh: the published port of every node, from the client namespace
      const meshSeen = new Set<string>();
      for (const n of lab.nodes) {
        await waitFor(`${svc} on ${n.addr}:${port}`, () => {
          const task = answeredBy(tasks, get(lab.client, `http://${n.addr}:${port}/`));
          if (task) meshSeen.add(task.id);
          return task !== undefined;
        });
      }
      await waitFor(`every task of ${svc} through the mesh`, () => {
        const task = answeredBy(tasks, get(lab.client, `http://${lab.nodes[0]!.addr}:${port}/`));
        if (task) meshSeen.add(task.id);
        return meshSeen.size === 3;
      });
    }
  }, 2 * CASE_MS);

  it("a container has its own PID namespace (PID 1 is the image's process), the image's filesystem, and the task's hostname", async () => {
    const tasks = await running("cweb", 3);
    const from = sandboxOf(box)!;
    expect(get(from, "http://cweb/cgi-bin/pid1").trim()).toBe("/bin/httpd -f -v -h /www -p 0.0.0.0:80");

    for (const t of tasks) {
      const exec = (...cmd: string[]) => vipmeshOk("exec", t.id, "--", ...cmd).trim();
      expect(exec("cat", "/proc/1/cmdline").split("\0").filter(Boolean)).toEqual(["/bin/httpd", "-f", "-v", "-h", "/www", "-p", "0.0.0.0:80"]);
      expect(exec("cat", "/etc/vipmesh-image")).toBe(SAMPLE_MARKER.trim());
      expect(exec("hostname")).toBe(t.id.slice(0, 12));
      // nothing of the node's filesystem: busybox's / has no /usr, the node's does
      expect(vipmesh("exec", t.id, "--", "test", "-e", "/usr").status).not.toBe(0);
      // the embedded DNS, as in a process task's sandbox
      expect(exec("cat", "/etc/resolv.conf")).toMatch(/^nameserver 127\.0\.0\.11$/m);

      // read back from the kernel: containerd's task for it, PID 1 in a PID namespace of its own, in the task's sandbox's network namespace
      const host = lab.nodes.find((n) => sandboxOf(t)?.startsWith(`${n.netns}-`))!.hostname;
      const pid = [...containerPids(host)].find(([id]) => id.includes(t.id))?.[1];
      expect(pid, `${t.id}'s container on ${host}: ${ctr(host, "tasks", "ls")}`).toBeGreaterThan(0);
      expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(/^NSpid:\s+\d+\s+1$/m);
      const inode = (path: string) => statSync(path).ino;
      expect(inode(`/proc/${pid}/ns/pid`)).not.toBe(inode("/proc/self/ns/pid"));
      expect(inode(`/proc/${pid}/ns/mnt`)).not.toBe(inode("/proc/self/ns/mnt"));
      expect(inode(`/proc/${pid}/ns/net`)).toBe(inode(`/run/netns/${sandboxOf(t)}`));
    }
  }, CASE_MS);

  it("`service logs` has the container's output", async () => {
    const from = sandboxOf(box)!;
    for (let i = 0; i < 3; i++) get(from, "http://cweb/");
    // the page's CGI: a line per request on stderr
    await waitFor("the access log's lines in service logs", () => /\| \S+:\d+ GET \/ 200$/m.test(vipmeshOk("service", "logs", "cweb")));
  }, CASE_MS);

  it("--limit-memory 32m: a container allocating 64 MiB is killed, reported failed for OOM, and replaced", async () => {
    // --entrypoint replaces httpd; dd, the container's PID 1 once the shell execs it, allocates its 64 MiB block
    const hog = "sleep 2; exec dd if=/dev/zero of=/dev/null bs=64M count=1";
    vipmeshOk("service", "create", "--detach", "--name", "hog", "--image", SAMPLE_IMAGE, "--limit-memory", "32m", "--entrypoint", "sh -c", "--", hog);
    const failed = await waitFor(
      "a hog task failed",
      async () => (await tasksOf("hog")).find((t) => t.status?.state === "failed"),
      90_000,
    );
    expect(`${failed.status?.err} ${failed.status?.message}`).toMatch(/OOM|out of memory/i);
    // its slot gets a new task
    await waitFor("a replacement for the OOM-killed task", async () =>
      (await tasksOf("hog")).some((t) => t.id !== failed.id && t.slot === failed.slot && t.desiredState === "running"),
    );
    vipmeshOk("service", "rm", "hog");
  }, CASE_MS);

  it("a hostile container is refused what it tries on its node, in the task and through vipmesh exec", async () => {
    const probe = readFileSync(CONTAINER_PROBE, "utf8");
    const attempts = (out: string) => new Map([...out.matchAll(/^(.+): (refused|ALLOWED)$/gm)].map((m) => [m[1]!, m[2]!]));
    const expectAllRefused = (out: string, where: string) => {
      expect(out, where).toContain("probe: done");
      const seen = attempts(out);
      expect(seen.size, where).toBe(PROBE_ATTEMPTS);
      expect([...seen].filter(([, r]) => r !== "refused").map(([a]) => a), where).toEqual([]);
    };
    const disk = readFileSync(`/sys/block/${readdirSync("/sys/block").find((d) => !/^(loop|zram|ram)/.test(d)) ?? "loop0"}/dev`, "utf8").trim();
    // the probe first, then the image's httpd as PID 1, so that the task runs on
    vipmeshOk(
      "service", "create", "--detach", "--name", "hostile", "--network", "cnet", "--image", SAMPLE_IMAGE, "--limit-pids", "48",
      "-e", `PROBE_DISK=${disk}`, "--entrypoint", "sh -c", "--", `${probe}\nexec /bin/httpd -f -h /www -p 80`,
    );
    try {
      const logs = await waitFor("the probe's report in the container's log", () => {
        const out = vipmesh("service", "logs", "hostile").stdout;
        return out.includes("probe: done") ? out : undefined;
      }, 90_000);
      expectAllRefused(logs, "the task");
      const [t] = await running("hostile", 1);
      expectAllRefused(vipmeshOk("exec", `hostile.${t!.slot}`, "--", "sh", "-c", probe), "vipmesh exec");
    } finally {
      vipmeshOk("service", "rm", "hostile");
    }
  }, CASE_MS);

  it("a missing image is the task's error, naming the image, at once (no registry reachable from the nodes)", async () => {
    const missing = "vipmesh.local/nosuch:1";
    vipmeshOk("service", "create", "--detach", "--name", "nosuch", "--image", missing);
    const t = await waitFor("a nosuch task's error", async () => (await tasksOf("nosuch")).find((t) => t.status?.err), 60_000);
    expect(t.status!.err).toContain("vipmesh.local/nosuch");
    expect(["rejected", "failed"]).toContain(t.status!.state);
    vipmeshOk("service", "rm", "nosuch");
  }, CASE_MS);

  it("an agent restart keeps its containers (same PIDs) and a connection to one held across it", async () => {
    const host = "node1";
    await call(client, "createService", {
      spec: {
        annotations: { name: "echo" },
        taskTemplate: { container: { image: SAMPLE_IMAGE, command: ["nc", "-ll", "-p", "7000", "-e", "cat"] }, placement: { constraints: [`node.hostname==${host}`] } },
        replicated: { replicas: 1 },
        endpointSpec: { ports: [{ targetPort: 7000, publishedPort: 7000 }] },
      },
    });
    const [echo] = (await running("echo", 1)) as [wire.Task];
    const node1 = lab.nodes.find((n) => n.hostname === host)!;
    const before = containerPids(host);
    expect([...before.keys()].some((id) => id.includes(echo.id))).toBe(true);

    // one connection from the client namespace through node1's published port, a line echoed every 100 ms
    let out = "";
    const startConnection = () => {
      const conn = spawn("ip", ["netns", "exec", lab.client, process.execPath, ECHO_CLIENT, node1.addr, "7000"], { stdio: ["ignore", "pipe", "pipe"] });
      conn.stdout.on("data", (d: Buffer) => (out += d));
      conn.stderr.on("data", (d: Buffer) => (out += d));
      return conn;
    };
    const count = () => Number(/ok (\d+)\n$/.exec(out)?.[1] ?? 0);
    let conn = startConnection();
    try {
      // the mesh may take a moment to publish the port: a refused first try is retried
      await waitFor("the echo connection to carry lines", () => {
        if (out.includes("CLOSED")) {
          out = "";
          conn = startConnection();
        }
        return count() >= 3;
      });
      const agent = agentPid(lab, host);
      const logFrom = statSync(join(lab.dir, `agent-${host}.log`)).size;
      killAgent(lab, host);
      await waitFor(`${host}'s agent back, in session with the manager`, async () => {
        const pid = agentPid(lab, host);
        const since = readFileSync(join(lab.dir, `agent-${host}.log`)).subarray(logFrom).toString();
        const node = (await call(client, "inspectNode", { node: host })).node;
        return pid !== undefined && pid !== agent && since.includes("session open as node") && node?.status?.state === "ready";
      });
      // the restarted agent adopted its tasks: the same task runs, and after a few more lines, nothing changed
      const atReady = count();
      await waitFor("more lines over the connection after the restart", () => count() >= atReady + 20);
      expect(out).not.toContain("CLOSED");
      expect(containerPids(host)).toEqual(before);
      const [still] = await running("echo", 1);
      expect(still!.id).toBe(echo.id);
    } finally {
      conn.kill();
    }
  }, CASE_MS);

  it("`service rm` leaves no container, no container snapshot and no sandbox behind on any node", async () => {
    for (const svc of ["cweb", "pweb", "box", "echo"]) vipmeshOk("service", "rm", svc);
    await waitFor("no container, container snapshot or task sandbox left", () =>
      lab.nodes.every((n) => {
        const containers = lines(ctr(n.hostname, "containers", "ls", "-q"));
        // the image's own (committed) snapshots stay with the image; a container's is an active one
        const active = rows(ctr(n.hostname, "snapshots", "ls")).filter((r) => r.at(-1) === "Active");
        const sandboxes = listNamespaces().filter((ns) => ns.startsWith(`${n.netns}-`) && !ns.endsWith("-ingress"));
        return containers.length === 0 && active.length === 0 && sandboxes.length === 0;
      }),
    );
    // and nothing of the containers' rootfs mounted
    expect(labMounts()).toEqual([]);
  }, CASE_MS);
});
