// Runs the sample image's containers in a private containerd: httpd as PID 1
// in a network namespace of the test's own, its CGI fetched over a veth from
// another namespace, exit codes, exec, an OOM kill under a memory limit, and
// deletion that leaves no snapshot, task or shim.

import { existsSync, readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { afterAll, beforeAll, expect, it } from "vitest";
import { Containerd, type ImageRecord, mountsUnder, shimsOf } from "../src/index.ts";
import { containerdDescribe } from "@vipmesh/testing/kernel";
import { TestLab } from "./lab.ts";
import { testSpec } from "./oci-spec.ts";
import { SAMPLE_ENTRYPOINT, sampleArchive } from "./sample-image.ts";

const SERVER_IP = "10.231.7.2";
const CLIENT_IP = "10.231.7.1";

containerdDescribe("containerd containers and tasks", () => {
  const lab = new TestLab();
  const ns = "vipmesh-test";
  let cd: Containerd;
  let image: ImageRecord;
  let sandbox: string; // the containers' network namespace
  let client: string; // where the test's HTTP client runs

  const spec = (id: string, args: string[], memoryLimit?: number) =>
    testSpec({ args, netnsPath: `/run/netns/${sandbox}`, cgroupsPath: `${lab.cgroupParent}/${id}`, hostname: id, memoryLimit });
  const stdio = (id: string) => `file://${lab.dir}/${id}.log`;

  beforeAll(async () => {
    const d = await lab.start();
    cd = await Containerd.connect({ socket: d.socket, namespace: ns });
    [image] = (await cd.importArchive(Readable.from([sampleArchive("vipmesh/sample:1", "docker-archive")]))) as [ImageRecord];
    sandbox = lab.netns("sb");
    client = lab.netns("cl");
    // a veth between the client's namespace and the sandbox; nothing in the root namespace
    lab.inNetns(client, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", sandbox]);
    lab.inNetns(client, ["ip", "addr", "add", `${CLIENT_IP}/24`, "dev", "eth0"]);
    lab.inNetns(client, ["ip", "link", "set", "eth0", "up"]);
    lab.inNetns(sandbox, ["ip", "addr", "add", `${SERVER_IP}/24`, "dev", "eth0"]);
    lab.inNetns(sandbox, ["ip", "link", "set", "eth0", "up"]);
  });
  afterAll(async () => {
    cd?.close();
    await lab.cleanup();
  });

  async function httpGet(path: string): Promise<string> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        return lab.inNetns(client, ["/bin/busybox", "wget", "-q", "-O", "-", `http://${SERVER_IP}${path}`], 3000);
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  it("runs httpd as PID 1 and serves its CGI to another namespace", async () => {
    await cd.createContainer({ id: "web", image, spec: spec("web", SAMPLE_ENTRYPOINT), labels: { "org.vipmesh.task": "t1" } });
    expect(await cd.containers({ "org.vipmesh.task": "t1" })).toEqual([
      { id: "web", image: "docker.io/vipmesh/sample:1", labels: { "org.vipmesh.task": "t1" } },
    ]);
    expect(await cd.containers({ "org.vipmesh.task": "other" })).toEqual([]);
    const { pid } = await cd.startTask("web", { stdioUri: stdio("web") });
    expect(await cd.task("web")).toEqual({ id: "web", pid, status: "running" });
    // the host's view of the task: httpd, PID 1 in its own PID namespace, in the sandbox's network namespace
    expect(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0]).toBe("/bin/httpd");
    expect(readFileSync(`/proc/${pid}/status`, "utf8")).toMatch(new RegExp(`NSpid:\\s+${pid}\\s+1\\n`));
    const body = await httpGet("/cgi-bin/whoami");
    expect(body).toContain("hostname: web\n");
    expect(body).toContain(`ip: ${SERVER_IP}\n`);
    expect(lab.ctr("-n", ns, "tasks", "ls")).toMatch(new RegExp(`web\\s+${pid}\\s+RUNNING`));
  });

  it("execs a process in a running container and reports its exit code", async () => {
    const proc = { args: ["/bin/sh", "-c", "test \"$(hostname)\" = web && exit 3"], cwd: "/", env: ["PATH=/bin"], user: { uid: 0, gid: 0 } };
    const { pid } = await cd.exec("web", { execId: "probe", process: proc, stdioUri: stdio("probe") });
    expect(pid).toBeGreaterThan(0);
    expect((await cd.wait("web", { execId: "probe" })).exitStatus).toBe(3);
    expect(await cd.deleteProcess("web", "probe")).toEqual({ exitStatus: 3 });
  });

  it("stops a task with a signal; wait gives the exit status; delete is idempotent", async () => {
    const exited = cd.wait("web");
    await cd.kill("web", "SIGKILL"); // httpd as PID 1 has no SIGTERM handler, so the kernel ignores that one
    const r = await exited;
    expect(r.exitStatus).toBe(137);
    expect(Date.parse(r.exitedAt)).toBeGreaterThan(0);
    expect((await cd.task("web"))?.status).toBe("stopped");
    expect(await cd.deleteTask("web")).toEqual({ exitStatus: 137 });
    expect(await cd.task("web")).toBeUndefined();
    expect(await cd.deleteTask("web")).toBeUndefined();
    await cd.deleteContainer("web");
    await cd.deleteContainer("web");
    expect(await cd.containers()).toEqual([]);
    expect(await cd.snapshots()).toEqual([image.chainId]);
  });

  it("reports a process's own exit code and the task exit event", async () => {
    const events: { topic: string; event: object }[] = [];
    const unsubscribe = cd.events((e) => events.push(e));
    try {
      await cd.createContainer({ id: "exit7", image, spec: spec("exit7", ["/bin/sh", "-c", "exit 7"]), labels: {} });
      const started = await cd.startTask("exit7", { stdioUri: stdio("exit7") });
      expect((await cd.wait("exit7")).exitStatus).toBe(7);
      await expect.poll(() => events.find((e) => e.topic === "/tasks/exit")).toBeTruthy();
      expect(events.find((e) => e.topic === "/tasks/exit")?.event).toMatchObject({ containerId: "exit7", pid: started.pid, exitStatus: 7 });
    } finally {
      unsubscribe();
    }
    await cd.deleteContainer("exit7");
  });

  it("an OOM under a memory limit is an event and a kill", async () => {
    const events: { topic: string; event: object }[] = [];
    const unsubscribe = cd.events((e) => events.push(e));
    try {
      const args = ["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"];
      await cd.createContainer({ id: "oom", image, spec: spec("oom", args, 32 << 20), labels: {} });
      await cd.startTask("oom", { stdioUri: stdio("oom") });
      expect((await cd.wait("oom")).exitStatus).toBe(137);
      await expect.poll(() => events.find((e) => e.topic === "/tasks/oom")).toBeTruthy();
      expect(events.find((e) => e.topic === "/tasks/oom")?.event).toMatchObject({ containerId: "oom" });
    } finally {
      unsubscribe();
    }
    await cd.deleteContainer("oom");
  });

  it("deleteContainer kills a running task; a failed create leaves nothing", async () => {
    await cd.createContainer({ id: "sleeper", image, spec: spec("sleeper", ["/bin/sleep", "1000"]), labels: {} });
    await cd.startTask("sleeper", { stdioUri: stdio("sleeper") });
    await expect(cd.createContainer({ id: "sleeper", image, spec: spec("sleeper", ["/bin/true"]), labels: {} })).rejects.toThrow(
      "container sleeper already exists",
    );
    await cd.deleteContainer("sleeper");
    expect(await cd.task("sleeper")).toBeUndefined();
    expect(await cd.containers()).toEqual([]);
    // a task whose binary does not exist fails to start and leaves no task behind
    await cd.createContainer({ id: "nobin", image, spec: spec("nobin", ["/bin/nonexistent"]), labels: {} });
    await expect(cd.startTask("nobin", { stdioUri: stdio("nobin") })).rejects.toThrow(/nonexistent|no such file/i);
    expect(await cd.task("nobin")).toBeUndefined();
    await cd.deleteContainer("nobin");
    expect(await cd.snapshots()).toEqual([image.chainId]);
  });

  it("stop() kills the tasks still running and their shims, and unmounts what is under its dir", async () => {
    await cd.createContainer({ id: "left", image, spec: spec("left", ["/bin/sleep", "1000"]), labels: {} });
    const { pid } = await cd.startTask("left", { stdioUri: stdio("left") });
    const daemon = lab.daemon as NonNullable<typeof lab.daemon>;
    expect(shimsOf(daemon.socket).length).toBe(1);
    expect(mountsUnder(lab.dir).length).toBeGreaterThan(0); // the task's rootfs
    await daemon.stop();
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    expect(shimsOf(daemon.socket)).toEqual([]);
    expect(mountsUnder(lab.dir)).toEqual([]);
  });
});
