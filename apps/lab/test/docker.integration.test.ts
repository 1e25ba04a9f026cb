// The real `docker` CLI drives a real 3-node lab through the manager's Docker
// Engine API: the seed scenario with docker commands only (on the unix socket),
// the same cluster over TCP with mutual TLS from inside the lab, and a compose
// stack deployed, reached through every node, re-deployed in place and removed
// with nothing of it left on any node. Asserts what docker prints and what the
// kernel holds.

import { call } from "@vipmesh/api";
import { type DockerResult, docker as runDocker, dockerEnv, dockerOk, waitFor as waitForBase } from "@vipmesh/testing";
import { kernelDescribe } from "@vipmesh/testing/kernel";
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { dockerTarget, listNamespaces } from "../src/lab.ts";
import { client, lab, sharedLab } from "./shared-lab.ts";

const name = `d${randomBytes(3).toString("hex")}`;
const STACK = fileURLToPath(new URL("../../../scripts/demo-stack.yml", import.meta.url));
const SUBNET = /^10\.0\.3\.(\d+)\/24$/;

/** The lab's pace: docker polls, agents sync; given 60 s, checked every half second. */
const waitFor = <T>(what: string, check: () => T | Promise<T>, timeoutMs = 60_000) => waitForBase(what, check, timeoutMs, 500);

/** Runs docker on the lab's unix socket; throws with its output unless it exits 0. */
const docker = (...args: string[]) => dockerOk(dockerTarget(lab), args, { timeoutMs: 60_000 });

const VIPMESH = fileURLToPath(new URL("../../../bin/vipmesh", import.meta.url));

/** `docker ARGS…` as a user runs it after `eval "$(vipmesh lab env …)"`: in bash, inside `netns` when given. */
function dockerAfterLabEnv(envFlags: string[], args: string[], netns?: string): DockerResult {
  const script = `eval "$("$0" lab env --name ${lab.name} ${envFlags.join(" ")})" && exec ${netns ? `ip netns exec ${netns} ` : ""}docker "$@"`;
  // the throwaway DOCKER_CONFIG and no DOCKER_* of this process's: lab env's lines alone say where docker goes
  const r = spawnSync("bash", ["-c", script, VIPMESH, ...args], { env: dockerEnv({ host: "" }), encoding: "utf8", timeout: 30_000 });
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

const lines = (s: string) => s.split("\n").map((l) => l.trim()).filter(Boolean);

const sh = (netns: string, ...cmd: string[]) => execFileSync("ip", ["netns", "exec", netns, ...cmd], { timeout: 15_000 }).toString();
/** A task's sandbox: the namespace named after its ID. */
const sandboxOf = (taskId: string) => listNamespaces().find((ns) => ns.startsWith(lab.prefix) && ns.endsWith(taskId));
const get = (netns: string, url: string) => spawnSync("ip", ["netns", "exec", netns, "curl", "-s", "--max-time", "2", url], { encoding: "utf8" }).stdout;
const resolve = (netns: string, host: string) => lines(sh(netns, "dig", "+short", "+tries=1", "+time=2", host)).sort();

/** The full IDs of a service's tasks meant to run, once `n` run. */
const runningTasks = (service: string, n: number) =>
  waitFor(`${n} running tasks of ${service}`, async () => {
    const rows = lines(await docker("service", "ps", "--no-trunc", "--filter", "desired-state=running", "--format", "{{.ID}} {{.Node}} {{.CurrentState}}", service));
    const up = rows.map((r) => r.split(" ")).filter(([, , state]) => state === "Running");
    return up.length === n && rows.length === n ? up.map(([id, node]) => ({ id: id!, node: node! })) : undefined;
  });

/** The kernel has ESP: the seed's network is encrypted then, as the demo decides. */
const hasEsp = () => existsSync("/sys/module/esp4") || spawnSync("modprobe", ["-q", "esp4"]).status === 0;

kernelDescribe("the docker CLI on a 3-node lab", () => {
  sharedLab({ name, nodes: 3, heartbeatMs: 1000 }, () => expect(existsSync(lab.dockerSocket)).toBe(false));

  it("runs the seed scenario with docker commands only, on the lab's unix socket", async () => {
    await docker("network", "create", "--driver", "overlay", "--subnet", "10.0.3.0/24", ...(hasEsp() ? ["--opt", "encrypted"] : []), "collabnet");
    // the seed's command verbatim: it waits for the tasks (--detach=false is the CLI's default)
    const created = await runDocker(dockerTarget(lab), ["service", "create", "--replicas", "3", "--name", "collabweb", "--network", "collabnet", "vipmesh/whoami"], {
      timeoutMs: 90_000,
    });
    expect(created.code, created.stderr).toBe(0);
    // the new service's ID on stdout, then the CLI's progress until it verified the tasks stay up
    const id = lines(created.stdout)[0]!;
    expect(created.stdout + created.stderr).toContain(`verify: Service ${id} converged`);

    const vips = JSON.parse(await docker("service", "inspect", "--format", "{{json .Endpoint.VirtualIPs}}", "collabweb")) as { NetworkID: string; Addr: string }[];
    const netId = (await docker("network", "inspect", "--format", "{{.Id}}", "collabnet")).trim();
    expect(vips).toHaveLength(1);
    expect(vips[0]!.NetworkID).toBe(netId);
    expect(vips[0]!.Addr).toMatch(SUBNET);

    // the table docker prints, and the tasks on three different nodes, running
    const table = await docker("service", "ps", "collabweb");
    expect(lines(table)[0]).toMatch(/^ID\s+NAME\s+IMAGE\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR\s+PORTS$/);
    const tasks = await runningTasks("collabweb", 3);
    expect(new Set(tasks.map((t) => t.node))).toEqual(new Set(lab.nodes.map((n) => n.hostname)));

    // from inside a task, http://collabweb is answered by whoami (through the VIP the embedded DNS gives)
    const sandbox = sandboxOf(tasks[0]!.id)!;
    expect(sandbox).toBeDefined();
    await waitFor("collabweb to resolve to its VIP", () => resolve(sandbox, "collabweb").join() === vips[0]!.Addr.split("/")[0]);
    const answered = await waitFor("a request to http://collabweb answered", () => /Task: (\S+)/.exec(get(sandbox, "http://collabweb/"))?.[1]);
    expect(tasks.map((t) => t.id)).toContain(answered);
  });

  it("is found with lab env's lines: on the unix socket, and over TCP with mutual TLS from inside the lab's client namespace", () => {
    const format = ["service", "ls", "--format", "{{.Name}} {{.Mode}} {{.Replicas}} {{.Image}}"];
    for (const [flags, netns] of [[[], undefined], [["--tls"], lab.client]] as const) {
      const r = dockerAfterLabEnv([...flags], format, netns);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/^collabweb replicated 3\/3 vipmesh\/whoami/m);
    }
    // without the admin's certificate, no answer: the TLS port is mutual TLS only
    const anonymous = spawnSync("ip", ["netns", "exec", lab.client, "curl", "-sk", "--max-time", "3", `https://${lab.dockerTcp}/_ping`]);
    expect(anonymous.status).not.toBe(0);
    // an unknown lab is said to be one
    const unknown = spawnSync(VIPMESH, ["lab", "env", "--name", "nosuchlab"], { encoding: "utf8" });
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain("lab nosuchlab is not running");
  });

  it("deploys a compose stack, reached through every node, re-deploys it in place, and removes it with nothing left", async () => {
    const dir = mkdtempSync(join(tmpdir(), "vipmesh-stack-"));
    try {
      await docker("stack", "deploy", "--detach=true", "-c", STACK, "demo");
      const web = await runningTasks("demo_web", 2);
      const api = await runningTasks("demo_api", 2);
      // web's compose healthcheck, as Docker keeps it, runs in its tasks: both turn healthy (read over gRPC: docker shows no task health)
      const check = JSON.parse(await docker("service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Healthcheck.Test}}", "demo_web"));
      expect(check).toEqual(["CMD", "curl", "-sf", "--max-time", "1", "http://127.0.0.1/health"]);
      await waitFor("demo_web's tasks healthy", async () => {
        const { tasks } = await call(client, "listTasks", { service: "demo_web" });
        const up = tasks.filter((t) => t.desiredState === "running");
        return up.length === 2 && up.every((t) => t.status?.health === "healthy");
      });
      expect(lines(await docker("service", "ls", "--format", "{{.Name}} {{.Replicas}} {{.Ports}}"))).toEqual(
        expect.arrayContaining(["demo_api 2/2", "demo_web 2/2 *:8088->80/tcp"]),
      );
      const netId = (await docker("network", "inspect", "--format", "{{.Id}}", "demo_appnet")).trim();
      const vni = (await docker("network", "inspect", "--format", '{{index .Options "com.docker.network.driver.overlay.vxlanid_list"}}', "demo_appnet")).trim();
      expect(vni).toMatch(/^\d+$/);
      const webVips = JSON.parse(await docker("service", "inspect", "--format", "{{json .Endpoint.VirtualIPs}}", "demo_web")) as { NetworkID: string; Addr: string }[];
      const vip = webVips.find((v) => v.NetworkID === netId)!.Addr.split("/")[0]!;
      const ingressVip = webVips.find((v) => v.NetworkID !== netId)!.Addr.split("/")[0]!;

      // the published port through every node, from the lab's client (a node without a task too)
      for (const n of lab.nodes) {
        await waitFor(`${n.hostname}:8088 answered`, () => get(lab.client, `http://${n.addr}:8088/`).includes("Task: "));
      }

      // from a web task: the compose name, the stack's name and the alias reach the VIP; the dnsrr api its tasks
      const box = sandboxOf(web[0]!.id)!;
      const apiAddrs = await Promise.all(
        api.map(async (t) => (await docker("inspect", "--type", "task", "--format", "{{range .NetworksAttachments}}{{range .Addresses}}{{.}}{{end}}{{end}}", t.id)).trim().split("/")[0]!),
      );
      for (const host of ["web", "demo_web", "frontend"]) {
        await waitFor(`${host} to resolve to demo_web's VIP`, () => resolve(box, host).join() === vip);
        expect(get(box, `http://${host}/`)).toContain("Task: ");
      }
      for (const host of ["api", "tasks.api", "tasks.demo_api"]) {
        await waitFor(`${host} to resolve to demo_api's tasks`, () => resolve(box, host).join() === [...apiAddrs].sort().join());
      }
      expect(api.map((t) => t.id)).toContain(/Task: (\S+)/.exec(get(box, "http://api/"))?.[1]);

      // deployed again with a change: the same service, updated in place, one task at a time
      const id = (await docker("service", "inspect", "--format", "{{.ID}}", "demo_web")).trim();
      const changed = join(dir, "stack.yml");
      writeFileSync(changed, readFileSync(STACK, "utf8").replace("STAGE: one", "STAGE: two"));
      await docker("stack", "deploy", "--detach=true", "-c", changed, "demo");
      await waitFor("demo_web's rolling update completed", async () => {
        const status = JSON.parse(await docker("service", "inspect", "--format", "{{json .UpdateStatus}}", "demo_web")) as { State?: string } | null;
        return status?.State === "completed";
      }, 90_000);
      expect((await docker("service", "inspect", "--format", "{{.ID}}", "demo_web")).trim()).toBe(id);
      expect(await docker("service", "inspect", "--format", "{{json .Spec.TaskTemplate.ContainerSpec.Env}}", "demo_web")).toContain("STAGE=two");
      const updated = await runningTasks("demo_web", 2);
      expect(updated.map((t) => t.id).filter((t) => web.some((w) => w.id === t))).toEqual([]);
      await waitFor("8088 answered by an updated task", () => updated.some((t) => get(lab.client, `http://${lab.nodes[0]!.addr}:8088/`).includes(t.id)));

      // removed: every task of the stack ever, its network, its published port and VIP, its overlay
      const everyTask = lines(await docker("service", "ps", "-q", "--no-trunc", "demo_web", "demo_api"));
      /** What of the stack docker lists and the nodes' kernels hold, kind by kind. */
      const leftOfStack = async () => {
        const left = {
          networks: lines(await docker("network", "ls", "--format", "{{.Name}}")).filter((n) => n.startsWith("demo_")),
          services: lines(await docker("service", "ls", "--format", "{{.Name}}")).filter((s) => s.startsWith("demo_")),
          sandboxes: listNamespaces().filter((ns) => everyTask.some((t) => ns.endsWith(t))),
          published: [] as string[],
          ingress: [] as string[],
          overlay: [] as string[],
        };
        for (const n of lab.nodes) {
          if (/\b8088\b/.test(sh(n.netns, "nft", "list", "ruleset"))) left.published.push(n.hostname);
          if (existsSync(`/run/netns/${n.netns}-ingress`) && sh(`${n.netns}-ingress`, "nft", "list", "ruleset").includes(ingressVip)) left.ingress.push(n.hostname);
          if (execFileSync("ip", ["-n", n.netns, "-d", "link", "show", "type", "vxlan"]).toString().includes(`id ${vni} `)) left.overlay.push(n.hostname);
        }
        return left;
      };
      // before: each probe finds the stack (so that its absence below means something); the mesh is on every node
      const before = await leftOfStack();
      for (const [kind, found] of Object.entries(before)) expect(found.length, `${kind} of the stack before stack rm`).toBeGreaterThan(0);
      expect(before.published).toHaveLength(3);
      await docker("stack", "rm", "demo");
      await waitFor("nothing of the stack left", async () => {
        const left = Object.entries(await leftOfStack()).filter(([, found]) => found.length > 0);
        if (left.length > 0) throw new Error(`left: ${JSON.stringify(Object.fromEntries(left))}`); // waitFor's timeout says it
        return true;
      }, 30_000);
      // the seed's service is untouched
      expect(lines(await docker("service", "ls", "--format", "{{.Name}}"))).toEqual(["collabweb"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
