// `docker service …` and `docker service ps/logs` with the real docker CLI
// against a real manager's Engine API (unix socket; TLS for the read-only
// identity), its nodes simulated agents. One manager for the file.

import { request } from "node:http";
import { type DockerTarget, docker, dockerOk, startDocker } from "@vipmesh/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, startHarness, waitFor } from "./harness.ts";

let h: Harness;
let sock: DockerTarget;

beforeAll(async () => {
  h = await startHarness({ dockerApi: true });
  sock = h.docker!.unix;
  for (const name of ["node1", "node2", "node3"]) await h.addAgent(name);
  await dockerOk(sock, ["network", "create", "--driver", "overlay", "appnet"]);
}, 30_000);
afterAll(async () => {
  await h?.close();
});

/** A raw Engine API call over the socket: status and parsed body. */
function api(method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      { socketPath: sock.host.replace(/^unix:\/\//, ""), method, path, headers: data ? { "Content-Type": "application/json", "Content-Length": data.length } : {} },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, json: text ? JSON.parse(text) : {} }));
      },
    );
    req.on("error", reject);
    req.end(data);
  });
}

const inspect = async (name: string) => (await api("GET", `/v1.47/services/${name}`)).json as { ID: string; Version: { Index: number }; Spec: Record<string, unknown> };

let lastEnvs: string[] = [];
/**
 * The service's running tasks' env, as the docker CLI's template prints them, each sorted:
 * the CLI's --env-add merges through a Go map, so its order is not the one typed.
 */
async function runningEnvs(service: string): Promise<string[]> {
  const ids = (await dockerOk(sock, ["service", "ps", "-q", "--filter", "desired-state=running", service])).trim().split("\n").filter(Boolean);
  const out = await dockerOk(sock, ["inspect", "--type", "task", "--format", "{{.Status.State}} {{json .Spec.ContainerSpec.Env}}", ...ids]);
  lastEnvs = out
    .trim()
    .split("\n")
    .map((line) => {
      const [state, env] = [line.slice(0, line.indexOf(" ")), line.slice(line.indexOf(" ") + 1)];
      return `${state} ${JSON.stringify((JSON.parse(env) as string[]).sort())}`;
    });
  return lastEnvs;
}

describe("docker service with the real docker CLI", () => {
  let id = "";

  it("creates a service detached; ls shows its mode, replicas and ports; -q and --filter name work", async () => {
    const out = await dockerOk(sock, [
      "service", "create", "--detach", "--name", "web", "--replicas", "3", "--network", "appnet",
      "--publish", "8080:80", "--label", "a=b", "--env", "X=1",
      // all tasks at once: the rolling update and rollback below wait for no monitor period between tasks
      "--update-parallelism", "0", "--rollback-parallelism", "0", "vipmesh/whoami",
    ]);
    id = out.trim();
    expect(id).toMatch(/^[a-z0-9]{25}$/);
    await waitFor("web 3/3 in service ls", async () => /\b3\/3\b/.test(await dockerOk(sock, ["service", "ls"])), 15_000);
    const table = (await dockerOk(sock, ["service", "ls"])).split("\n");
    expect(table[0]).toMatch(/^ID\s+NAME\s+MODE\s+REPLICAS\s+IMAGE\s+PORTS/);
    const row = table.find((l) => /\sweb\s/.test(l))!;
    expect(row).toMatch(/replicated\s+3\/3\s+vipmesh\/whoami:latest\s+\*:8080->80\/tcp/);
    // -q prints short IDs, as Docker's
    const short = id.slice(0, 12);
    expect((await dockerOk(sock, ["service", "ls", "-q"])).trim().split("\n")).toContain(short);
    expect((await dockerOk(sock, ["service", "ls", "-q", "--filter", "name=we"])).trim()).toBe(short);
    expect((await dockerOk(sock, ["service", "ls", "-q", "--filter", "name=nothing"])).trim()).toBe("");
    expect((await dockerOk(sock, ["service", "ls", "-q", "--filter", "label=a=b"])).trim()).toBe(short);
  }, 30_000);

  it("inspects: VIPs on its network and ingress, --pretty, the Docker fields", async () => {
    const vips = JSON.parse(await dockerOk(sock, ["service", "inspect", "--format", "{{json .Endpoint.VirtualIPs}}", "web"]));
    const appnet = JSON.parse(await dockerOk(sock, ["network", "inspect", "--format", "{{json .Id}}", "appnet"]));
    expect(vips).toContainEqual({ NetworkID: appnet, Addr: expect.stringMatching(/^\d+\.\d+\.\d+\.\d+\/\d+$/) });
    expect(vips).toHaveLength(2); // and the ingress network's, for the published port
    const pretty = await dockerOk(sock, ["service", "inspect", "--pretty", "web"]);
    expect(pretty).toMatch(/Name:\s+web/);
    expect(pretty).toMatch(/Replicas:\s+3/);
    expect(pretty).toMatch(/Image:\s+vipmesh\/whoami:latest/);
    expect(pretty).toMatch(/PublishedPort = 8080/);
    const labels = await dockerOk(sock, ["service", "inspect", "--format", "{{json .Spec.Labels}} {{json .Spec.TaskTemplate.ContainerSpec.Env}}", "web"]);
    expect(labels.trim()).toBe('{"a":"b"} ["X=1"]');
  });

  it("ps shows the tasks as <service>.<slot> on their nodes, running; --no-trunc the whole IDs", async () => {
    const ps = (await dockerOk(sock, ["service", "ps", "web"])).trim().split("\n");
    expect(ps[0]).toMatch(/^ID\s+NAME\s+IMAGE\s+NODE\s+DESIRED STATE\s+CURRENT STATE\s+ERROR\s+PORTS/);
    const rows = ps.slice(1);
    expect(rows).toHaveLength(3);
    expect(rows.map((r) => /\s(web\.\d)\s/.exec(r)?.[1]).sort()).toEqual(["web.1", "web.2", "web.3"]);
    for (const r of rows) expect(r).toMatch(/\s(node[123])\s+Running\s+Running .* ago/);
    const full = await dockerOk(sock, ["service", "ps", "--no-trunc", "-q", "web"]);
    for (const taskId of full.trim().split("\n")) expect(taskId).toMatch(/^[a-z0-9]{25}$/);
  });

  it("update --env-add rolls the tasks; a stale version is refused 'update out of sequence'; --rollback goes back", async () => {
    const before = await inspect("web");
    await dockerOk(sock, ["service", "update", "--detach", "--env-add", "Y=2", "web"]);
    await waitFor("web's tasks replaced with Y=2", async () => {
      const envs = await runningEnvs("web");
      return envs.length === 3 && envs.every((e) => e === 'running ["X=1","Y=2"]');
    }, 20_000).catch((err) => {
      throw new Error(`${err}; last seen: ${JSON.stringify(lastEnvs)}`);
    });

    const stale = await api("POST", `/v1.47/services/web/update?version=${before.Version.Index}`, before.Spec);
    expect(stale.status).toBe(500);
    expect(stale.json.message).toMatch(/update out of sequence/);
    const noVersion = await api("POST", "/v1.47/services/web/update", before.Spec);
    expect(noVersion.status).toBe(400);
    expect(noVersion.json.message).toMatch(/version/);

    const staleRollback = await api("POST", `/v1.47/services/web/update?version=${before.Version.Index}&rollback=previous`, before.Spec);
    expect(staleRollback.status).toBe(500);
    expect(staleRollback.json.message).toMatch(/update out of sequence/);
    const env = ((await inspect("web")).Spec as { TaskTemplate: { ContainerSpec: { Env: string[] } } }).TaskTemplate.ContainerSpec.Env;
    expect([...env].sort()).toEqual(["X=1", "Y=2"]);

    await dockerOk(sock, ["service", "update", "--detach", "--rollback", "web"]);
    await waitFor("web's tasks rolled back to X=1 alone", async () => {
      const envs = await runningEnvs("web");
      return envs.length === 3 && envs.every((e) => e === 'running ["X=1"]');
    }, 20_000);
  }, 60_000);

  it("scale sets the replicas, and keeps vipmesh's own settings that the docker CLI cannot carry back", async () => {
    const before = await inspect("web");
    const spec = before.Spec as { EndpointSpec: Record<string, unknown> };
    const withAffinity = { ...spec, EndpointSpec: { ...spec.EndpointSpec, LbAffinity: "client-ip", LbAffinityTimeout: 60e9 } };
    expect((await api("POST", `/v1.47/services/web/update?version=${before.Version.Index}`, withAffinity)).status).toBe(200);
    await dockerOk(sock, ["service", "scale", "--detach", "web=2"]);
    await waitFor("web 2/2 in service ls", async () => /\sweb\s.*\s2\/2\s/.test(await dockerOk(sock, ["service", "ls"])), 15_000);
    expect(await inspect("web")).toMatchObject({ Spec: { EndpointSpec: { LbAffinity: "client-ip", LbAffinityTimeout: 60e9 } } });
  }, 30_000);

  it("logs prints each task's lines as name.slot.id@node | line; -f streams until the client goes", async () => {
    const tasks = JSON.parse(
      `[${(await dockerOk(sock, ["inspect", "--type", "task", "--format", "{{json .}}", ...(await dockerOk(sock, ["service", "ps", "-q", "--no-trunc", "--filter", "desired-state=running", "web"])).trim().split("\n")])).trim().split("\n").join(",")}]`,
    ) as { ID: string; Slot: number; NodeID: string }[];
    const agentOf = (t: { NodeID: string }) => h.agents.find((a) => a.nodeId === t.NodeID)!;
    for (const t of tasks) agentOf(t).logs.set(t.ID, `hello from ${t.Slot}\n`);

    const out = await dockerOk(sock, ["service", "logs", "web"]);
    for (const t of tasks) {
      expect(out).toMatch(new RegExp(`^web\\.${t.Slot}\\.${t.ID.slice(0, 12)}@node\\d\\s+\\| hello from ${t.Slot}$`, "m"));
    }
    const raw = await dockerOk(sock, ["service", "logs", "--raw", "--timestamps", "web"]);
    expect(raw).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z hello from \d$/m);
    // one task's logs (/tasks/{id}/logs): only its agent is asked, only its lines come
    const one = tasks[1]!;
    const asked = h.agents.map((a) => a.logRequests);
    expect((await dockerOk(sock, ["service", "logs", one.ID])).trim().split("\n")).toEqual([expect.stringMatching(new RegExp(`\\| hello from ${one.Slot}$`))]);
    expect(h.agents.map((a, i) => a.logRequests - asked[i]!)).toEqual(h.agents.map((a) => (a.nodeId === one.NodeID ? 1 : 0)));

    const t = tasks[0]!;
    const follow = startDocker(sock, ["service", "logs", "-f", "--no-task-ids", "web"]);
    let text = "";
    follow.stdout?.on("data", (d: Buffer) => (text += d.toString()));
    try {
      await waitFor("the first lines of logs -f", () => text.includes(`hello from ${t.Slot}`), 10_000);
      agentOf(t).appendLog(t.ID, "more\n");
      await waitFor("the appended line in logs -f", () => new RegExp(`web\\.${t.Slot}@node\\d\\s+\\| more`).test(text), 10_000);
      expect(h.agents.reduce((n, a) => n + a.logFollows, 0)).toBeGreaterThan(0);
    } finally {
      follow.kill("SIGINT");
    }
    // the client gone, the agents are told to stop following
    await waitFor("the agents to stop following", () => h.agents.every((a) => a.logFollows === 0), 10_000);
  }, 40_000);

  it("create --detach=false returns once the tasks run, saying the service converged", async () => {
    const out = await dockerOk(sock, ["service", "create", "--detach=false", "--update-monitor", "1s", "--name", "api", "--replicas", "2", "vipmesh/whoami"], { timeoutMs: 30_000 });
    expect(out).toMatch(/^verify: Service [a-z0-9]{25} converged$/m);
    expect((await dockerOk(sock, ["service", "ps", "-q", "--filter", "desired-state=running", "api"])).trim().split("\n")).toHaveLength(2);
  }, 40_000);

  it("warns about a field vipmesh does not honour, and refuses a wrong type naming the field", async () => {
    const spec = { Name: "mounted", TaskTemplate: { ContainerSpec: { Image: "vipmesh/whoami", Mounts: [{ Type: "volume", Source: "data", Target: "/data" }] } } };
    const created = await api("POST", "/v1.47/services/create", spec);
    expect(created.status).toBe(201);
    expect(created.json.Warnings).toEqual(["TaskTemplate.ContainerSpec.Mounts is not supported by vipmesh and was ignored"]);
    const bad = await api("POST", "/v1.47/services/create", { Name: "bad", TaskTemplate: { ContainerSpec: { Image: "vipmesh/whoami", Env: "X=1" } } });
    expect(bad).toEqual({ status: 400, json: { message: "TaskTemplate.ContainerSpec.Env must be a list of strings" } });
    expect((await api("GET", "/v1.47/services/bad")).status).toBe(404);
  });

  it("create --reserve-memory --reserve-cpu --workdir IMAGE ARGS round-trips: Args, Dir and Reservations stored and shown; update changes one; nodes and info say runtimes and resources", async () => {
    await dockerOk(sock, ["service", "create", "--detach", "--name", "box", "--reserve-memory", "64m", "--reserve-cpu", "0.5", "--workdir", "/x", "busybox", "sleep", "1"]);
    try {
      const spec = (await inspect("box")).Spec as { TaskTemplate: { ContainerSpec: Record<string, unknown>; Resources: Record<string, unknown> } };
      // the words after the image are Args: the image's ENTRYPOINT stays (no Command)
      expect(spec.TaskTemplate.ContainerSpec).toMatchObject({ Image: "busybox:latest", Command: [], Args: ["sleep", "1"], Dir: "/x" });
      expect(spec.TaskTemplate.Resources).toEqual({ Reservations: { NanoCPUs: 5e8, MemoryBytes: 64 * 1024 ** 2 } });
      // the docker CLI reads the spec back, changes one field and sends the whole: the rest stays
      await dockerOk(sock, ["service", "update", "--detach", "--reserve-memory", "32m", "box"]);
      const updated = (await inspect("box")).Spec as typeof spec;
      expect(updated.TaskTemplate.Resources).toEqual({ Reservations: { NanoCPUs: 5e8, MemoryBytes: 32 * 1024 ** 2 } });
      expect(updated.TaskTemplate.ContainerSpec).toMatchObject({ Args: ["sleep", "1"], Dir: "/x" });
      await waitFor("box's task placed", async () => (await dockerOk(sock, ["service", "ps", "-q", "--filter", "desired-state=running", "box"])).trim() !== "");
      // the simulated agents say both runtimes and their resources
      const node = JSON.parse(await dockerOk(sock, ["node", "inspect", "--format", "{{json .Description}}", "node1"])) as Record<string, unknown>;
      expect(node).toMatchObject({ Resources: { NanoCPUs: 64e9, MemoryBytes: 256 * 1024 ** 3 }, Engine: { Plugins: [{ Type: "Runtime", Name: "process" }, { Type: "Runtime", Name: "container" }] } });
      expect(JSON.parse(await dockerOk(sock, ["info", "--format", "{{json .Runtimes}}"]))).toEqual({ process: { path: "vipmesh-agent" }, container: { path: "runc" } });
    } finally {
      await dockerOk(sock, ["service", "rm", "box"]);
    }
  }, 30_000);

  it("refuses the read-only identity's create (403), lets it list", async () => {
    const ro = h.docker!.readonly;
    expect((await dockerOk(ro, ["service", "ls", "-q"])).trim().split("\n")).toContain(id.slice(0, 12));
    const r = await docker(ro, ["service", "create", "--detach", "--name", "nope", "vipmesh/whoami"]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/readonly certificate may not call CreateService/);
    expect((await api("GET", "/v1.47/services/nope")).status).toBe(404);
  });

  it("rm removes the services", async () => {
    await dockerOk(sock, ["service", "rm", "web", "api", "mounted"]);
    expect((await dockerOk(sock, ["service", "ls", "-q"])).trim()).toBe("");
    expect((await docker(sock, ["service", "inspect", "web"])).code).not.toBe(0);
  });
});
