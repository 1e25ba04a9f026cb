// The CLI against a real manager on 127.0.0.1:0, run in-process through
// run(argv, io) with captured output. No agents join, so nothing converges.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startManager } from "@vipmesh/manager";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Io } from "../src/io.ts";
import { run } from "../src/program.ts";

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

let manager: Awaited<ReturnType<typeof startManager>>;
let dataDir: string;
let host: string;

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "vipmesh-cli-"));
  manager = await startManager({ dataDir, listen: ["127.0.0.1:0"] });
  host = manager.addresses[0]!;
});

afterAll(async () => {
  await manager?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function vipmesh(...argv: string[]): Promise<Result> {
  let stdout = "";
  let stderr = "";
  const io: Io = {
    stdout: (t) => void (stdout += t),
    stderr: (t) => void (stderr += t),
    env: {},
    interactive: false,
    now: () => new Date(),
  };
  const code = await run(["--host", host, ...argv], io);
  return { code, stdout, stderr };
}

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
    expect(table.stdout).toContain(`${id.slice(0, 12)}   appnet   overlay   10.0.9.0/24`);
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

  it("rejects a bad --publish with a readable message and exit 1", async () => {
    const r = await vipmesh("service", "create", "--detach", "--name", "bad", "--publish", "70000", "--", "true");
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^Error: .*70000.*1-65535/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(r.stdout).toBe("");
  });

  it("times out waiting for a service that cannot converge", async () => {
    const r = await vipmesh("service", "create", "--name", "stuck", "--timeout", "1s", "--", "true");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("Error: timed out after 1s waiting for stuck to converge: 0/1 tasks running");
  });

  it("removes services and reports the ones it cannot find", async () => {
    const r = await vipmesh("service", "rm", "stuck", "nosuch");
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("stuck\n");
    expect(r.stderr).toMatch(/^Error: .*nosuch/);
  });
});

describe("errors", () => {
  it("exits 2 on usage errors", async () => {
    expect((await vipmesh("service", "scale", "web")).code).toBe(2);
    expect((await vipmesh("service", "create", "--name", "x", "--replicas", "many", "--", "true")).code).toBe(2);
    expect((await vipmesh("network", "frobnicate")).code).toBe(2);
  });

  it("names the address of a manager it cannot reach", async () => {
    let stderr = "";
    const io: Io = { stdout: () => {}, stderr: (t) => void (stderr += t), env: {}, interactive: false, now: () => new Date() };
    const code = await run(["--host", "127.0.0.1:1", "node", "ls"], io);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^Error: cannot reach the vipmesh manager at 127\.0\.0\.1:1 /);
  });

  it("asks for --host or VIPMESH_HOST when neither is given", async () => {
    let stderr = "";
    const io: Io = { stdout: () => {}, stderr: (t) => void (stderr += t), env: {}, interactive: false, now: () => new Date() };
    expect(await run(["service", "ls"], io)).toBe(2);
    expect(stderr).toContain("pass --host ADDR or set VIPMESH_HOST");
  });
});
