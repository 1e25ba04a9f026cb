// A hostile task on a real lab node: every task runs confined (its own PID,
// mount, IPC and UTS namespaces, a read-only root, Docker's capabilities,
// seccomp, a cgroup of its own). The task, its health check and `vipmesh
// exec` into it try what hostile-probe.sh lists, and must be refused each
// time; the limits and settings its spec gives are what the kernel shows.

import { call, type wire } from "@vipmesh/api";
import { randomBytes } from "node:crypto";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, expect, it } from "vitest";
import { waitFor as waitForBase } from "@vipmesh/testing";
import { kernelDescribe } from "@vipmesh/testing/kernel";
import { client, lab, sharedLab } from "./shared-lab.ts";
import { agentPid, listNamespaces, namespacePids } from "../src/lab.ts";

const name = `c${randomBytes(3).toString("hex")}`;
const VIPMESH = fileURLToPath(new URL("../../../bin/vipmesh", import.meta.url));
const PROBE = fileURLToPath(new URL("./hostile-probe.sh", import.meta.url));
/** Every attempt the probe makes but the per-secret reads (their names depend on the lab's paths). */
const ATTEMPTS = 20;


const waitFor = <T>(what: string, check: () => T | Promise<T>, timeoutMs = 30_000) => waitForBase(what, check, timeoutMs);
const vipmesh = (...args: string[]) => spawnSync(VIPMESH, ["--host", lab.socket, "--tls-dir", lab.tlsDir, ...args], { encoding: "utf8", timeout: 60_000 });

/** Every file under `dir` whose name says it is a key or a token. */
function secretsUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .map((f) => join(dir, f))
    .filter((f) => statSync(f).isFile() && /(key|token)/.test(f.split("/").pop()!));
}

/** Where the health check's report would land on the node, were the check not in the task's own /tmp. */
const NODE_HEALTH_PROBE = "/tmp/health-probe";

/** The probe's lines: attempt → "refused" | "ALLOWED". */
function attempts(output: string): Map<string, string> {
  return new Map([...output.matchAll(/^(.+): (refused|ALLOWED)$/gm)].map((m) => [m[1]!, m[2]!]));
}

function expectAllRefused(output: string, secrets: string[], forks = true): void {
  const seen = attempts(output);
  expect(output).toContain("probe: done");
  expect(seen.size).toBe(ATTEMPTS + secrets.length - (forks ? 0 : 1));
  for (const s of secrets) expect(seen.get(`read ${s}`)).toBe("refused");
  expect([...seen].filter(([, r]) => r !== "refused").map(([a]) => a)).toEqual([]);
}

async function runningTask(service: string): Promise<wire.Task> {
  return waitFor(`a running task of ${service}`, async () => {
    const { tasks } = await call(client, "listTasks", { service });
    return tasks.find((t) => t.desiredState === "running" && t.status?.state === "running");
  });
}

/** The confine helper's processes of a task, on the host: its outer process (the one in no child PID namespace). */
function outerOf(t: wire.Task): number {
  const sandbox = listNamespaces().find((ns) => ns.startsWith(lab.prefix) && ns.endsWith(t.id))!;
  return namespacePids(sandbox).find((pid) => /^NSpid:\s*\d+$/m.test(readFileSync(`/proc/${pid}/status`, "utf8")))!;
}

/** A task's cgroup directory in a v1 controller's hierarchy (these machines mount v1). */
function cgroupDir(pid: number, controller: string): string {
  const line = readFileSync(`/proc/${pid}/cgroup`, "utf8")
    .split("\n")
    .find((l) => l.split(":")[1]!.split(",").includes(controller))!;
  return join("/sys/fs/cgroup", controller, line.split(":")[2]!);
}

let secrets: string[];

kernelDescribe("a hostile task on a lab node", () => {
  sharedLab({ name, nodes: 1 });
  beforeAll(async () => {
    // the cluster CA's and identities' keys, the node's key and state, the join token, the lab's record, the node's passwords
    secrets = [...secretsUnder(lab.dir), join(lab.dir, "lab.json"), "/etc/shadow"];
    expect(secrets.some((s) => s.endsWith("ca.key") || s.includes("/ca/"))).toBe(true);
    expect(secrets.some((s) => s.startsWith(lab.nodes[0]!.stateDir))).toBe(true);
    const disk = readFileSync(`/sys/block/${readdirSync("/sys/block").find((d) => !/^(loop|zram|ram)/.test(d)) ?? "loop0"}/dev`, "utf8").trim();
    rmSync(NODE_HEALTH_PROBE, { force: true }); // a check entering the task before its mounts were made wrote it there
    expect(vipmesh("network", "create", "probenet").status).toBe(0);
    const created = vipmesh(
      "service", "create", "--name", "hostile", "--network", "probenet", "--limit-pids", "48", "--limit-memory", "256m", "--limit-cpu", "0.5",
      "-e", `PROBE_SECRETS=${secrets.join(":")}`, "-e", `PROBE_STATE_DIR=${lab.nodes[0]!.stateDir}`, "-e", `PROBE_SOCKET=${lab.socket}`,
      "-e", `PROBE_AGENT_PID=${agentPid(lab, "node1")}`, "-e", `PROBE_DISK=${disk}`,
      // the health check probes too (in the task's cgroups: no fork storm beside it), and is healthy only when every attempt was refused
      // (written aside, then renamed: the test reads a whole report, never one being written)
      "--health-cmd", `PROBE_FORKS=0 sh ${PROBE} > /tmp/probe.$$ 2>&1; cat /proc/self/cgroup >> /tmp/probe.$$; mv /tmp/probe.$$ /tmp/health-probe; ! grep -q ALLOWED /tmp/health-probe`, "--health-interval", "3s", "--health-timeout", "20s",
      "--", "sh", "-c", `sh ${PROBE}; exec vipmesh whoami --port 80`,
    ); // prettier-ignore
    expect(created.stderr + created.stdout).toContain("converged");
  }, 120_000);

  it("reads no secret of the node or the cluster, sees nothing outside itself, changes nothing of its node, forks no more than its pids limit", async () => {
    const logs = await waitFor("the probe's report in the task's log", () => {
      const out = vipmesh("service", "logs", "hostile").stdout;
      return out.includes("probe: done") ? out : undefined;
    });
    expectAllRefused(logs.replace(/^\S+\s+\| /gm, ""), secrets);
  });

  it("runs its health check as confined, and the task is healthy (whoami answers)", async () => {
    const t = await waitFor("the task healthy", async () => {
      const task = await runningTask("hostile");
      return task.status?.health === "healthy" ? task : undefined;
    });
    const r = vipmesh("exec", "hostile.1", "--", "cat", "/tmp/health-probe");
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(NODE_HEALTH_PROBE), "a check's file in the node's /tmp").toBe(false);
    expectAllRefused(r.stdout, secrets, false);
    expect(r.stdout).toMatch(new RegExp(`^\\d+:pids:/vm-${name}-node1/${t.id}$`, "m"));
    // the check passes before whoami, which starts after the probe, is listening
    const whoami = () => vipmesh("exec", "hostile.1", "--", "node", "-e", 'fetch("http://127.0.0.1/").then(r => r.text()).then(console.log)').stdout;
    await waitFor("whoami's answer from inside the task", () => whoami().includes(`Task: ${t.id}`) || undefined);
  });

  it("is as confined under vipmesh exec, which still works: the task's hostname, Docker's capabilities, no_new_privs, seccomp", () => {
    const r = vipmesh("exec", "hostile.1", "--", "sh", PROBE);
    expect(r.status).toBe(0);
    expectAllRefused(r.stdout, secrets);
    const status = vipmesh("exec", "hostile.1", "--", "sh", "-c", "hostname; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status").stdout;
    expect(status).toMatch(/^CapEff:\s+00000000a80425fb$/m); // Docker's default set
    expect(status).toMatch(/^CapBnd:\s+00000000a80425fb$/m);
    expect(status).toMatch(/^NoNewPrivs:\s+1$/m);
    expect(status).toMatch(/^Seccomp:\s+2$/m);
    expect(vipmesh("exec", "hostile.1", "--", "sh", "-c", "exit 7").status).toBe(7);
  });

  it("has a cgroup of its own with the limits its spec gives, removed when it stops", async () => {
    const t = await runningTask("hostile");
    const outer = outerOf(t);
    const pids = cgroupDir(outer, "pids");
    expect(pids).toContain(`/vm-${name}-node1/${t.id}`);
    expect(readFileSync(join(pids, "pids.max"), "utf8").trim()).toBe("48");
    expect(readFileSync(join(cgroupDir(outer, "memory"), "memory.limit_in_bytes"), "utf8").trim()).toBe(String(256 << 20));
    expect(readFileSync(join(cgroupDir(outer, "cpu"), "cpu.cfs_quota_us"), "utf8").trim()).toBe("50000");
    const devices = readFileSync(join(cgroupDir(outer, "devices"), "devices.list"), "utf8");
    expect(devices).toContain("c 1:3 rwm");
    expect(devices).not.toMatch(/^[ab] \*:\*/m);
    expect(devices).not.toMatch(/^b /m); // no block device at all

    expect(vipmesh("service", "rm", "hostile").status).toBe(0);
    await waitFor("the task's cgroups removed", () => !existsSync(pids) || undefined);
  });

  it("runs as the user and with the capabilities its spec gives", async () => {
    const created = vipmesh(
      "service", "create", "--name", "admin", "--network", "probenet", "--user", "65534:65534", "--", "sleep", "infinity",
    ); // prettier-ignore
    expect(created.status).toBe(0);
    const nobody = vipmesh("exec", "admin.1", "--", "sh", "-c", "id -u; id -g; grep '^CapEff:' /proc/self/status; touch /root/mine && echo home");
    expect(nobody.stdout.split("\n").slice(0, 4)).toEqual(["65534", "65534", "CapEff:\t0000000000000000", "home"]);

    // NET_ADMIN added to nothing: the task may change its own sandbox's routes, and nothing else
    expect(vipmesh("service", "update", "--user", "", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN", "admin").status).toBe(0);
    await waitFor("the updated task", async () => {
      const status = vipmesh("exec", "admin.1", "--", "grep", "^CapEff:", "/proc/self/status").stdout;
      return status.includes("0000000000001000") || undefined;
    });
    expect(vipmesh("exec", "admin.1", "--", "ip", "route", "add", "10.254.254.0/24", "dev", "lo").status).toBe(0);
    expect(vipmesh("exec", "admin.1", "--", "touch", "/tmp/x", "/etc/x").status).not.toBe(0);
  });
});
