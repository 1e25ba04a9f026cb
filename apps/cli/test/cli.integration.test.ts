// The CLI against a real manager on 127.0.0.1:0, run in-process through
// run(argv, io) with captured output. The main manager has no agents, so
// nothing converges there; a second one has a simulated agent for the waits.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { call, clusterClient, credentialsFromDir, dispatcherClient, NodeIdentity } from "@vipmesh/api";
import { startManager } from "@vipmesh/manager";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Io } from "../src/io.ts";
import { run } from "../src/program.ts";
import { SimAgent, waitFor } from "@vipmesh/testing";
import { runCli } from "./run-cli.ts";

interface TestManager {
  host: string;
  tlsDir: string;
  /** The worker join token, for simulated agents. */
  token: string;
  stop(): Promise<void>;
}

async function startTestManager(options: { restartDelayMs?: number } = {}): Promise<TestManager> {
  const dataDir = mkdtempSync(join(tmpdir(), "vipmesh-cli-"));
  const manager = await startManager({ dataDir, listen: ["127.0.0.1:0"], ...options });
  return {
    host: manager.addresses[0]!,
    tlsDir: manager.adminTlsDir!,
    token: (await call(clusterClient(manager.addresses[0]!, credentialsFromDir(manager.adminTlsDir!)), "getJoinToken", { role: "worker" })).token,
    stop: async () => {
      await manager.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}


let manager: TestManager;
beforeAll(async () => {
  manager = await startTestManager();
});
afterAll(() => manager?.stop());

/** The CLI, as the admin of `m`. */
const cliOf =
  (m: () => TestManager) =>
  (...argv: string[]) =>
    runCli(["--host", m().host, "--tls-dir", m().tlsDir, ...argv]);
const vipmesh = cliOf(() => manager);

async function json<T = any>(...argv: string[]): Promise<T> {
  const r = await vipmesh(...argv);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as T;
}

describe("networks", () => {
  it("creates, lists and inspects an overlay network in docker's shapes", async () => {
    const created = await vipmesh("network", "create", "--subnet", "10.0.9.0/24", "--opt", "encrypted", "appnet");
    expect(created).toMatchObject({ code: 0, stderr: "" });
    const id = created.stdout.trim();
    expect(id).toMatch(/^\w{12,}$/);

    const listed = await json("network", "ls", "--json");
    expect(listed).toContainEqual(expect.objectContaining({ Id: id, Name: "appnet", Driver: "overlay" }));

    const [network] = await json("network", "inspect", "--json", "appnet");
    expect(network).toMatchObject({
      Name: "appnet",
      Id: id,
      Scope: "swarm",
      IPAM: { Driver: "default", Config: [{ Subnet: "10.0.9.0/24", Gateway: "10.0.9.1" }] },
      Options: { encrypted: "" },
    });
    expect(Number(network.Options["com.docker.network.driver.overlay.vxlanid_list"])).toBeGreaterThanOrEqual(4096);

    const table = await vipmesh("network", "ls");
    expect(table.stdout).toMatch(/^ID\s+NAME\s+DRIVER\s+SUBNET\n/);
    expect(table.stdout).toMatch(new RegExp(`^${id.slice(0, 12)}\\s+appnet\\s+overlay\\s+10\\.0\\.9\\.0/24$`, "m"));
    expect(table.stdout, "the routing mesh's network, built in").toMatch(/^\w{12}\s+ingress\s+overlay\s+10\.255\.0\.0\/16$/m);
  });
});

describe("services", () => {
  it("creates a service detached and inspects its VIP and published port", async () => {
    const created = await vipmesh(
      "service", "create", "--detach", "--name", "web", "--replicas", "2", "--network", "appnet",
      "--publish", "80", "--env", "A=1", "--", "vipmesh", "whoami", "--port", "80",
    );
    expect(created).toMatchObject({ code: 0, stderr: "" });
    const id = created.stdout.trim();

    const [service] = await json("service", "inspect", "--json", "web");
    expect(service).toMatchObject({
      ID: id,
      Spec: {
        Name: "web",
        TaskTemplate: { ContainerSpec: { Command: ["vipmesh", "whoami", "--port", "80"], Env: ["A=1"] } },
        Mode: { Replicated: { Replicas: 2 } },
        EndpointSpec: { Mode: "vip" },
      },
    });
    const [vip] = service.Endpoint.VirtualIPs;
    expect(vip.Addr).toMatch(/^10\.0\.9\.\d+\/24$/);
    const [port] = service.Endpoint.Ports;
    expect(port).toMatchObject({ Protocol: "tcp", TargetPort: 80, PublishMode: "ingress" });
    expect(port.PublishedPort).toBeGreaterThanOrEqual(30000);
    expect(port.PublishedPort).toBeLessThanOrEqual(32767);

    const ls = await vipmesh("service", "ls");
    expect(ls.stdout).toMatch(/^ID\s+NAME\s+MODE\s+REPLICAS\s+PORTS\n/);
    expect(ls.stdout).toContain(`web    replicated   0/2        *:${port.PublishedPort}->80/tcp`);
  });

  it("lists the tasks of a service", async () => {
    const tasks = await json<any[]>("service", "ps", "--json", "web");
    expect(tasks).toHaveLength(2);
    expect(tasks.map((t) => t.Slot).sort()).toEqual([1, 2]);
    for (const t of tasks) expect(t).toMatchObject({ DesiredState: "running", Status: { State: "pending" } });
  });

  it("updates a service from its current spec", async () => {
    const updated = await vipmesh(
      "service", "update", "--detach", "--env-add", "B=2", "--env-rm", "A", "--label-add", "tier=front",
      "--publish-add", "8080:81", "--force", "web",
    );
    expect(updated).toMatchObject({ code: 0, stdout: "web\n", stderr: "" });
    const [service] = await json("service", "inspect", "web");
    expect(service.Spec.TaskTemplate.ContainerSpec.Env).toEqual(["B=2"]);
    expect(service.Spec.TaskTemplate.ForceUpdate).toBe(1);
    expect(service.Spec.Labels).toEqual({ tier: "front" });
    expect(service.Endpoint.Ports).toContainEqual(
      expect.objectContaining({ TargetPort: 81, PublishedPort: 8080 }),
    );
  });

  it("scales a service", async () => {
    expect(await vipmesh("service", "scale", "--detach", "web=3")).toMatchObject({ code: 0, stdout: "web scaled to 3\n" });
    const [service] = await json("service", "inspect", "web");
    expect(service.Spec.Mode).toEqual({ Replicated: { Replicas: 3 } });
  });

  it("rolls a service back to its previous spec", async () => {
    expect(await vipmesh("service", "rollback", "--detach", "web")).toMatchObject({ code: 0, stdout: "web\n" });
    const [service] = await json("service", "inspect", "web");
    expect(service.Spec.Mode).toEqual({ Replicated: { Replicas: 2 } });
    expect(service.PreviousSpec.Mode).toEqual({ Replicated: { Replicas: 3 } });
  });

  it("creates a global service and refuses to scale it", async () => {
    expect((await vipmesh("service", "create", "-d", "--name", "agent", "--mode", "global", "--", "true")).code).toBe(0);
    const [service] = await json("service", "inspect", "agent");
    expect(service.Spec.Mode).toEqual({ Global: {} });
    const scaled = await vipmesh("service", "scale", "-d", "agent=2");
    expect(scaled.code).toBe(1);
    expect(scaled.stderr).toMatch(/^Error: service agent is global/);
  });

  it("rejects a bad --publish with a readable message and exit 1", async () => {
    const r = await vipmesh("service", "create", "--detach", "--name", "bad", "--publish", "70000", "--", "true");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: .*70000.*1-65535/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).toBe("");
  });

  it("sets client-IP affinity on create and update, and shows it in inspect", async () => {
    const created = await vipmesh("service", "create", "-d", "--name", "sticky", "--lb-affinity", "client-ip", "--lb-affinity-timeout", "3h", "--", "true");
    expect(created).toMatchObject({ code: 0, stderr: "" });
    let [service] = await json("service", "inspect", "sticky");
    expect(service.Spec.EndpointSpec).toMatchObject({ LbAffinity: "client-ip", LbAffinityTimeout: 10_800_000_000_000 });
    expect(await vipmesh("service", "update", "-d", "--lb-affinity-timeout", "600", "sticky")).toMatchObject({ code: 0, stderr: "" });
    [service] = await json("service", "inspect", "sticky");
    expect(service.Spec.EndpointSpec.LbAffinityTimeout).toBe(600_000_000_000);
    expect(await vipmesh("service", "update", "-d", "--lb-affinity", "none", "sticky")).toMatchObject({ code: 0, stderr: "" });
    [service] = await json("service", "inspect", "sticky");
    expect(service.Spec.EndpointSpec).not.toHaveProperty("LbAffinity");

    const long = await vipmesh("service", "create", "-d", "--name", "bad", "--lb-affinity", "client-ip", "--lb-affinity-timeout", "100000", "--", "true");
    expect(long.code).toBe(1);
    expect(long.stderr).toMatch(/^Error: lb affinity timeout: 100000 .*1-86400/);
    const fraction = await vipmesh("service", "create", "-d", "--name", "bad", "--lb-affinity-timeout", "1.5s", "--", "true");
    expect(fraction.code).toBe(2);
    expect(fraction.stderr).toContain("not a whole number of seconds");
  });

  it("sets a task's user, capabilities and limits on create, shows them in inspect, and updates them", async () => {
    const created = await vipmesh(
      "service", "create", "-d", "--name", "confined", "-u", "1000:1000", "--cap-add", "net_admin", "--cap-drop", "ALL",
      "--limit-cpu", "0.5", "--limit-memory", "512m", "--limit-pids", "100", "--", "true",
    );
    expect(created).toMatchObject({ code: 0, stderr: "" });
    let [service] = await json("service", "inspect", "confined");
    expect(service.Spec.TaskTemplate.ContainerSpec).toMatchObject({ User: "1000:1000", CapabilityAdd: ["CAP_NET_ADMIN"], CapabilityDrop: ["ALL"] });
    expect(service.Spec.TaskTemplate.Resources).toEqual({ Limits: { NanoCPUs: 500_000_000, MemoryBytes: 536_870_912, Pids: 100 } });
    const [task] = await json<any[]>("service", "ps", "--json", "confined");
    expect(task.Spec.ContainerSpec.User).toBe("1000:1000");

    // Docker's update rule: a dropped capability comes off the add list; 0 clears a limit, an absent flag keeps it
    const updated = await vipmesh(
      "service", "update", "-d", "--user", "nobody", "--cap-drop", "NET_ADMIN", "--cap-add", "NET_BIND_SERVICE",
      "--limit-cpu", "0", "--limit-memory", "1g", "confined",
    );
    expect(updated).toMatchObject({ code: 0, stdout: "confined\n", stderr: "" });
    [service] = await json("service", "inspect", "confined");
    expect(service.Spec.TaskTemplate.ContainerSpec).toMatchObject({ User: "nobody", CapabilityAdd: ["CAP_NET_BIND_SERVICE"], CapabilityDrop: ["ALL"] });
    expect(service.Spec.TaskTemplate.Resources).toEqual({ Limits: { MemoryBytes: 1024 ** 3, Pids: 100 } });

    // a bad value is refused with what to give, and leaves the service as it was
    const version = service.Version.Index;
    const fly = await vipmesh("service", "update", "-d", "--cap-add", "CAP_FLY", "confined");
    expect(fly.code).toBe(1);
    expect(fly.stderr).toMatch(/^Error: cap-add: "CAP_FLY" is not a Linux capability: .*NET_ADMIN/);
    const tiny = await vipmesh("service", "update", "-d", "--limit-memory", "1m", "confined");
    expect(tiny.code).toBe(1);
    expect(tiny.stderr).toMatch(/^Error: memory limit: 1 MiB is below 6 MiB/);
    [service] = await json("service", "inspect", "confined");
    expect(service.Version.Index).toBe(version);
    expect(service.Spec.TaskTemplate.ContainerSpec.CapabilityAdd).toEqual(["CAP_NET_BIND_SERVICE"]);

    // and on create, nothing of the service is made
    const flyer = await vipmesh("service", "create", "-d", "--name", "flyer", "--cap-add", "CAP_FLY", "--", "true");
    expect(flyer).toMatchObject({ code: 1, stdout: "" });
    expect(flyer.stderr).toMatch(/^Error: cap-add: "CAP_FLY"/);
    expect((await vipmesh("service", "inspect", "flyer")).code).toBe(1);
    expect((await vipmesh("service", "create", "-d", "--name", "flyer", "--limit-cpu", "lots", "--", "true")).code).toBe(2);
    expect((await vipmesh("service", "inspect", "flyer")).code).toBe(1);
    expect(await vipmesh("service", "rm", "confined")).toMatchObject({ code: 0 });
  });

  it("attaches with aliases, and changes attachments with --network-add/--network-rm (names resolved as docker's CLI does)", async () => {
    expect((await vipmesh("network", "create", "backnet")).code).toBe(0);
    const created = await vipmesh("service", "create", "-d", "--name", "aliased", "--network", "name=appnet,alias=api,alias=api-v1", "--", "true");
    expect(created).toMatchObject({ code: 0, stderr: "" });
    const [appnet] = await json("network", "inspect", "appnet");
    const [backnet] = await json("network", "inspect", "backnet");
    let [service] = await json("service", "inspect", "aliased");
    expect(service.Spec.TaskTemplate.Networks).toEqual([{ Target: appnet.Id, Aliases: ["api", "api-v1"] }]);

    // new aliases: off the network and back on it in one update; another network by its short form
    const updated = await vipmesh("service", "update", "-d", "--network-rm", "appnet", "--network-add", "name=appnet,alias=api-v2", "--network-add", "backnet", "aliased");
    expect(updated).toMatchObject({ code: 0, stderr: "" });
    [service] = await json("service", "inspect", "aliased");
    expect(service.Spec.TaskTemplate.Networks).toEqual([{ Target: appnet.Id, Aliases: ["api-v2"] }, { Target: backnet.Id }]);
    expect(await vipmesh("service", "update", "-d", "--network-rm", backnet.Id.slice(0, 12), "aliased")).toMatchObject({ code: 0, stderr: "" });
    [service] = await json("service", "inspect", "aliased");
    expect(service.Spec.TaskTemplate.Networks).toEqual([{ Target: appnet.Id, Aliases: ["api-v2"] }]);

    // a network attached already, one that does not exist, a bad alias or form: refused, nothing changes
    const version = service.Version.Index;
    expect(await vipmesh("service", "update", "-d", "--network-add", "appnet", "aliased")).toMatchObject({ code: 1, stderr: "Error: a network is given more than once\n" });
    expect((await vipmesh("service", "update", "-d", "--network-rm", "nosuch", "aliased")).stderr).toMatch(/^Error: network "nosuch" not found/);
    const badAlias = await vipmesh("service", "update", "-d", "--network-add", "name=backnet,alias=-x", "aliased");
    expect(badAlias).toMatchObject({ code: 1, stderr: expect.stringMatching(/^Error: network backnet: alias name "-x" is not valid/) });
    const badForm = await vipmesh("service", "update", "-d", "--network-add", "name=backnet,ip=10.0.0.9", "aliased");
    expect(badForm).toMatchObject({ code: 2, stderr: expect.stringContaining('"ip" is not a key vipmesh takes (name, alias)') });
    [service] = await json("service", "inspect", "aliased");
    expect(service.Version.Index).toBe(version);
    expect(await vipmesh("service", "rm", "aliased")).toMatchObject({ code: 0 });
  });

  it("passes a scheduler on to the manager, which refuses one no node's dataplane honours", async () => {
    const r = await vipmesh("service", "create", "-d", "--name", "leastconn", "--lb-scheduler", "lc", "--", "true");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: lb scheduler "lc" cannot be honoured by dataplane nftables, which applies while no node has registered/);
    expect((await vipmesh("service", "inspect", "leastconn")).code).toBe(1);
  });

  it("times out waiting for a service that cannot converge", async () => {
    const r = await vipmesh("service", "create", "--name", "stuck", "--timeout", "1s", "--", "true");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Error: timed out after 1s waiting for stuck to converge: 0/1 tasks running");
  });

  it("with --image, the words after the flags replace the image's CMD; --entrypoint, --workdir and --reserve-* set Docker's fields, and update changes each alone", async () => {
    const created = await vipmesh(
      "service", "create", "--detach", "--name", "boxed", "--image", "busybox:1.36", "--entrypoint", "/bin/sh -c", "--workdir", "/srv",
      "--reserve-cpu", "0.5", "--reserve-memory", "64m", "--limit-memory", "128m", "--", "echo 'hi there'",
    );
    expect(created).toMatchObject({ code: 0, stderr: "" });
    const inspect = async () => (await json<any[]>("service", "inspect", "boxed"))[0].Spec.TaskTemplate;
    let tt = await inspect();
    expect(tt.ContainerSpec).toMatchObject({ Image: "busybox:1.36", Command: ["/bin/sh", "-c"], Args: ["echo 'hi there'"], Dir: "/srv" });
    expect(tt.Resources).toEqual({ Limits: { MemoryBytes: 128 * 1024 ** 2 }, Reservations: { NanoCPUs: 5e8, MemoryBytes: 64 * 1024 ** 2 } });

    // --args replaces the image's CMD alone (the entrypoint stays); 0 clears a reservation, "" the workdir
    expect((await vipmesh("service", "update", "-d", "--args", `"echo bye"`, "--reserve-memory", "0", "--workdir", "", "boxed")).code).toBe(0);
    tt = await inspect();
    expect(tt.ContainerSpec).toMatchObject({ Command: ["/bin/sh", "-c"], Args: ["echo bye"] });
    expect(tt.ContainerSpec).not.toHaveProperty("Dir");
    expect(tt.Resources).toEqual({ Limits: { MemoryBytes: 128 * 1024 ** 2 }, Reservations: { NanoCPUs: 5e8 } });
    // --entrypoint "" gives the image's ENTRYPOINT back
    expect((await vipmesh("service", "update", "-d", "--entrypoint", "", "boxed")).code).toBe(0);
    expect((await inspect()).ContainerSpec).toMatchObject({ Command: [], Args: ["echo bye"] });

    // a reservation above its limit is refused with the reason; nothing changes
    const over = await vipmesh("service", "update", "-d", "--reserve-memory", "256m", "boxed");
    expect(over.code).toBe(1);
    expect(over.stderr).toContain("memory reservation: 256 MiB is above the memory limit of 128 MiB");
    // --entrypoint needs an image: without one the words are the command
    const noImage = await vipmesh("service", "create", "-d", "--name", "noimg", "--entrypoint", "sh", "--", "true");
    expect(noImage.code).toBe(2);
    expect(noImage.stderr).toContain("--entrypoint needs --image");
    expect((await vipmesh("service", "rm", "boxed")).code).toBe(0);
  });

  it("removes services and reports the ones it cannot find", async () => {
    const r = await vipmesh("service", "rm", "stuck", "nosuch");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("stuck\n");
    expect(r.stderr).toMatch(/^Error: .*nosuch/);
  });
});

describe("nodes", () => {
  it("lists, updates, inspects and removes a registered node", async () => {
    const token = (await vipmesh("join-token", "worker", "-q")).stdout.trim();
    const identity = await NodeIdentity.obtain({ manager: manager.host, token });
    const dispatcher = dispatcherClient(manager.host, { identity: identity.source });
    const { nodeId } = await call(dispatcher, "register", {
      hostname: "node-1",
      addr: "192.168.50.11",
      labels: { disk: "ssd" },
      runtimes: ["process", "container"],
      resources: { nanoCpus: 2e9, memoryBytes: 4 * 1024 ** 3 },
    });
    dispatcher.close();

    const nodes = await json<any[]>("node", "ls", "--json");
    expect(nodes).toContainEqual(
      expect.objectContaining({
        ID: nodeId,
        Description: expect.objectContaining({ Hostname: "node-1", Dataplane: "nftables", Engine: expect.objectContaining({ Labels: { disk: "ssd" } }) }),
        Spec: expect.anything(),
      }),
    );
    const table = await vipmesh("node", "ls");
    expect(table.stdout).toMatch(/^ID\s+HOSTNAME\s+STATUS\s+AVAILABILITY\s+MANAGER STATUS\s+ADDRESS\s+DATAPLANE\n/);
    // the manager first, the leader of its cluster of one
    expect(table.stdout.split("\n")[1]).toMatch(/^\w{12}\s+\S+\s+Ready\s+Active\s+Leader\b/);
    expect(table.stdout).toContain("node-1");

    const updated = await vipmesh("node", "update", "--availability", "drain", "--label-add", "zone=a", "node-1");
    expect(updated).toMatchObject({ code: 0, stdout: "node-1\n" });
    const [node] = await json("node", "inspect", "node-1");
    // the admin's labels change, the node's own stay apart
    expect(node.Spec).toEqual({ Availability: "drain", Labels: { zone: "a" }, Role: "worker", Membership: "accepted" });
    expect(node.Description.Engine.Labels).toEqual({ disk: "ssd" });
    expect(node.Status.Addr).toBe("192.168.50.11");
    // which runtimes it has and what it offers reservations
    expect(node.Description).toMatchObject({ Runtimes: ["process", "container"], Resources: { NanoCPUs: 2e9, MemoryBytes: 4 * 1024 ** 3 } });

    expect(await vipmesh("node", "rm", "--force", "node-1")).toMatchObject({ code: 0, stdout: "node-1\n" });
    expect((await json<any[]>("node", "ls", "--json")).map((n) => [n.Spec.Role, n.ManagerStatus?.Leader])).toEqual([["manager", true]]);
  });
});

describe("errors", () => {
  it("exits 2 on usage errors", async () => {
    expect((await vipmesh("service", "scale", "web")).code).toBe(2);
    expect((await vipmesh("service", "create", "--name", "x", "--replicas", "many", "--", "true")).code).toBe(2);
    expect((await vipmesh("network", "frobnicate")).code).toBe(2);
  });

  it("names the address of a manager it cannot reach", async () => {
    const r = await runCli(["--host", "127.0.0.1:1", "--tls-dir", manager.tlsDir, "node", "ls"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: cannot reach the vipmesh manager at 127\.0\.0\.1:1 /);
  });

  it("says a change left unanswered may or may not have been made, and exits 3", async () => {
    const r = await vipmesh("--call-timeout", "1ms", "network", "create", "unanswered");
    expect(r).toMatchObject({ code: 3, stdout: "" });
    expect(r.stderr).toBe(
      `Error: the vipmesh manager at ${manager.host} did not answer within 1ms: the network may or may not have been created; check with \`vipmesh network ls\`\n`,
    );
    const viaEnv = await runCli(["--host", manager.host, "--tls-dir", manager.tlsDir, "service", "create", "--detach", "--name", "unanswered", "--", "true"], { VIPMESH_CALL_TIMEOUT: "1ms" });
    expect(viaEnv.code).toBe(3);
    expect(viaEnv.stderr).toContain("within 1ms: the service may or may not have been created; check with `vipmesh service ls`");
  });

  it("fails a read left unanswered (exit 1), and refuses a call timeout that is no duration", async () => {
    const r = await vipmesh("--call-timeout", "1ms", "network", "ls");
    expect(r).toMatchObject({ code: 1, stderr: `Error: the vipmesh manager at ${manager.host} did not answer within 1ms\n` });
    const bad = await runCli(["--host", manager.host, "--tls-dir", manager.tlsDir, "network", "ls"], { VIPMESH_CALL_TIMEOUT: "soon" });
    expect(bad).toMatchObject({ code: 2, stderr: expect.stringContaining('VIPMESH_CALL_TIMEOUT: "soon" is not a duration') });
    expect((await vipmesh("--call-timeout", "0", "network", "ls")).code).toBe(2);
  });

  it("asks for --host or VIPMESH_HOST when neither is given", async () => {
    const r = await runCli(["service", "ls"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("pass --host ADDR or set VIPMESH_HOST");
  });
});

describe("waiting for convergence with an agent", () => {
  let converging: TestManager;
  let agent: SimAgent;
  const cli = cliOf(() => converging);

  beforeAll(async () => {
    // a failed task is replaced after the restart delay: keep the rollback test short
    converging = await startTestManager({ restartDelayMs: 50 });
    // tasks whose command starts with "fail" fail as they start
    agent = await new SimAgent(converging.host, {
      token: converging.token,
      hostname: "agent-1",
      addr: "192.0.2.21",
      fails: (t) => (t.spec.container.command[0] === "fail" ? "exit status 1" : undefined),
    }).start();
  });
  afterAll(async () => {
    agent?.stop();
    await converging?.stop();
  });

  it("returns once the service converged, printing progress", async () => {
    const r = await cli("service", "create", "--name", "conv", "--replicas", "2", "--update-monitor", "10ms", "--", "true");
    expect(r.stderr).toContain("conv: 2/2 tasks running, 1/1 nodes applied");
    expect(r.stderr).toMatch(/conv: converged\n$/);
    expect(r.code).toBe(0);
  });

  it("waits for a rolling update", async () => {
    const r = await cli("service", "update", "--force", "--timeout", "10s", "conv");
    expect(r.stderr).toMatch(/conv: converged\n$/);
    expect(r.code).toBe(0);
  });

  it("fails when the update pauses", async () => {
    expect((await cli("service", "create", "--name", "pausing", "--update-monitor", "10ms", "--", "true")).code).toBe(0);
    const r = await cli("service", "update", "--args", "fail now", "--timeout", "10s", "pausing");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: update paused due to failure or early termination of task \S+ \(failed: /m);
  });

  it("fails when the manager rolls the update back", async () => {
    expect((await cli("service", "create", "--name", "rolling", "--update-monitor", "10ms", "--rollback-monitor", "10ms", "--", "true")).code).toBe(0);
    const r = await cli(
      "service", "update", "--args", "fail again", "--update-failure-action", "rollback", "--timeout", "10s", "rolling",
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: update rolled back due to failure or early termination of task \S+ \(failed: .*exit status 1/m);
  });

  it("creates a service from an image with Docker's container fields and restart policy, and updates only what is given", async () => {
    expect((await cli("network", "create", "appnet")).code).toBe(0);
    const created = await cli(
      "service", "create", "--name", "imaged", "--image", "vipmesh/whoami", "--restart-condition", "on-failure", "--restart-max-attempts", "2",
      "--network", "name=appnet,alias=web", "--hostname", "h", "--container-label", "a=b", "--container-label", "c=d",
      "--update-monitor", "10ms", "--timeout", "10s",
    );
    expect(created.stderr).toMatch(/imaged: converged\n$/);
    expect(created.code).toBe(0);
    const inspect = async () => (await json<any[]>("--host", converging.host, "--tls-dir", converging.tlsDir, "service", "inspect", "imaged"))[0];
    let service = await inspect();
    const [network] = await json("--host", converging.host, "--tls-dir", converging.tlsDir, "network", "inspect", "appnet");
    expect(service.Spec.TaskTemplate.ContainerSpec).toMatchObject({ Image: "vipmesh/whoami", Command: [], Labels: { a: "b", c: "d" }, Hostname: "h" });
    expect(service.Spec.TaskTemplate.RestartPolicy).toEqual({ Condition: "on-failure", Delay: 5_000_000_000, MaxAttempts: 2, Window: 0 });
    expect(service.Spec.TaskTemplate.Networks).toEqual([{ Target: network.Id, Aliases: ["web"] }]);

    const updated = await cli("service", "update", "--restart-delay", "2s", "--container-label-rm", "a", "--timeout", "10s", "imaged");
    expect(updated.stderr).toMatch(/imaged: converged\n$/);
    expect(updated.code).toBe(0);
    service = await inspect();
    expect(service.Spec.TaskTemplate.ContainerSpec).toMatchObject({ Image: "vipmesh/whoami", Labels: { c: "d" }, Hostname: "h" });
    expect(service.Spec.TaskTemplate.RestartPolicy).toEqual({ Condition: "on-failure", Delay: 2_000_000_000, MaxAttempts: 2, Window: 0 });
    expect(service.Spec.TaskTemplate.Networks).toEqual([{ Target: network.Id, Aliases: ["web"] }]);

    // other changes keep the policy, and --image/--hostname replace theirs
    expect((await cli("service", "update", "-d", "--image", "vipmesh/whoami:2", "--hostname", "", "--restart-condition", "any", "imaged")).code).toBe(0);
    service = await inspect();
    expect(service.Spec.TaskTemplate.ContainerSpec).toMatchObject({ Image: "vipmesh/whoami:2", Labels: { c: "d" } });
    expect(service.Spec.TaskTemplate.ContainerSpec).not.toHaveProperty("Hostname");
    expect(service.Spec.TaskTemplate.RestartPolicy).toMatchObject({ Condition: "any", Delay: 2_000_000_000, MaxAttempts: 2 });
    const bad = await cli("service", "create", "-d", "--name", "bad", "--restart-condition", "sometimes", "--image", "vipmesh/whoami");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("Allowed choices are none, on-failure, any");
  });

  it("succeeds on a rollback the user asked for", async () => {
    expect(
      (await cli("service", "create", "--name", "back", "--update-monitor", "10ms", "--rollback-monitor", "10ms", "--", "true")).code,
    ).toBe(0);
    expect((await cli("service", "update", "--env-add", "X=1", "back")).code).toBe(0);
    const r = await cli("service", "rollback", "--timeout", "10s", "back");
    expect(r.stderr).toMatch(/back: converged\n$/);
    expect(r.code).toBe(0);
  });
});

describe("service logs", () => {
  let logging: TestManager;
  let agent: SimAgent;
  let tasks: { id: string; slot: number }[];
  const cli = cliOf(() => logging);

  beforeAll(async () => {
    logging = await startTestManager();
    agent = await new SimAgent(logging.host, { hostname: "agent-1", addr: "192.0.2.31", token: logging.token }).start();
    expect((await cli("service", "create", "--name", "chatty", "--replicas", "2", "--", "true")).code).toBe(0);
    tasks = (await json<any[]>("--host", logging.host, "--tls-dir", logging.tlsDir, "service", "ps", "--json", "chatty")).map((t) => ({ id: t.ID, slot: t.Slot }));
    for (const t of tasks) agent.logs.set(t.id, `slot ${t.slot} one\nslot ${t.slot} two\n`);
  });
  afterAll(async () => {
    agent?.stop();
    await logging?.stop();
  });

  const prefix = (t: { id: string; slot: number }) => `chatty.${t.slot}.${t.id.slice(0, 12)}@agent-1    | `;
  const linesOf = (stdout: string, t: { id: string; slot: number }) =>
    stdout.split("\n").filter((l) => l.startsWith(prefix(t))).map((l) => l.slice(prefix(t).length));

  it("prints each task's lines after its name and node, then exits 0", async () => {
    const r = await cli("service", "logs", "chatty");
    expect(r).toMatchObject({ code: 0, stderr: "" });
    expect(r.stdout.split("\n").filter(Boolean)).toHaveLength(4);
    for (const t of tasks) expect(linesOf(r.stdout, t)).toEqual([`slot ${t.slot} one`, `slot ${t.slot} two`]);
  });

  it("prints only the last lines with --tail", async () => {
    const r = await cli("service", "logs", "--tail", "1", "chatty");
    expect(r.code).toBe(0);
    for (const t of tasks) expect(linesOf(r.stdout, t)).toEqual([`slot ${t.slot} two`]);
    expect((await cli("service", "logs", "--tail", "0", "chatty")).code).toBe(2);
  });

  it("follows new output until Ctrl-C, then exits 0", async () => {
    let stdout = "";
    const io: Io = { stdout: (t) => void (stdout += t), stderr: (t) => void (stdout += t), env: {}, interactive: false, now: () => new Date(), labs: () => new Map() };
    const running = run(["--host", logging.host, "--tls-dir", logging.tlsDir, "service", "logs", "-f", "--tail", "1", "chatty"], io);
    const [t] = tasks as [{ id: string; slot: number }];
    await waitFor("the last lines", () => tasks.every((x) => linesOf(stdout, x).length === 1));
    agent.appendLog(t.id, "three\n");
    await waitFor("the new line", () => linesOf(stdout, t).includes("three"));
    process.emit("SIGINT", "SIGINT");
    expect(await running).toBe(0);
    await waitFor("the agent to stop following", () => agent.logFollows === 0);
  });

  it("fails for an unknown service", async () => {
    const r = await cli("service", "logs", "nosuch");
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('Error: service "nosuch" not found\n');
  });
});
