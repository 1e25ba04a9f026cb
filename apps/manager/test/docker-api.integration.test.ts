// The Docker Engine API's system, node and network routes, driven by the real
// docker binary over the unix socket and over TCP with mutual TLS (the admin
// identity dir as DOCKER_CERT_PATH), and raw requests for what the CLI never
// sends. One manager for the file; each case cleans up what it made.

import { readFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type DockerTarget, docker, dockerOk, tempDir } from "@vipmesh/testing";
import { startManager } from "../src/index.ts";
import { everything, type Harness, startHarness } from "./harness.ts";

let h: Harness;

beforeAll(async () => {
  // a heartbeat of 1 s: on a loaded machine the default 100 ms lets workers be marked down mid-test
  h = await startHarness({ dockerApi: true, heartbeatPeriodMs: 1000 });
  await h.addAgent("worker-a");
  await h.addAgent("worker-b");
}, 30_000);

afterAll(async () => {
  await h?.close();
});

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request to the Engine API: over the socket, or over TLS with `certDir`'s identity. */
function raw(target: DockerTarget, method: string, path: string, body?: string | Buffer): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) };
    const onResponse = (res: import("node:http").IncomingMessage) => {
      let data = "";
      res.on("data", (c: Buffer) => (data += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: data }));
    };
    let req: import("node:http").ClientRequest;
    if (target.host.startsWith("unix://")) {
      req = httpRequest({ socketPath: target.host.slice(7), method, path, headers }, onResponse);
    } else {
      const url = new URL(target.host.replace(/^tcp:/, "https:"));
      const dir = target.certDir!;
      const pem = (f: string) => readFileSync(join(dir, f));
      req = httpsRequest({ host: url.hostname, port: url.port, method, path, headers, ca: pem("ca.pem"), cert: pem("cert.pem"), key: pem("key.pem") }, onResponse);
    }
    req.on("error", reject);
    req.end(body);
  });
}

const message = (r: Raw) => (JSON.parse(r.body) as { message: string }).message;

for (const via of ["unix", "tls"] as const) {
  describe(`docker CLI over ${via === "unix" ? "the unix socket" : "TCP with mutual TLS"}`, () => {
    const t = () => h.docker![via];

    test("version and info: a swarm manager, API 1.47", async () => {
      const version = await dockerOk(t(), ["version", "--format", "{{.Server.APIVersion}} {{.Server.Os}}"]);
      expect(version.trim()).toBe("1.47 linux");
      const info = await dockerOk(t(), ["info", "--format", "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}} {{.Swarm.Nodes}} {{.Swarm.Managers}}"]);
      expect(info.trim()).toBe("active true 3 1");
      const pretty = await dockerOk(t(), ["info"]);
      expect(pretty).toMatch(/Swarm: active/);
      expect(pretty).toMatch(/Is Manager: true/);
    });

    test("node ls marks the manager as leader; workers ready and active; inspect and -q", async () => {
      const ls = await dockerOk(t(), ["node", "ls"]);
      const lines = ls.trim().split("\n");
      expect(lines[0]).toMatch(/^ID\s+HOSTNAME\s+STATUS\s+AVAILABILITY\s+MANAGER STATUS\s+ENGINE VERSION$/);
      const manager = lines.find((l) => l.includes(" * "));
      expect(manager).toMatch(/Ready\s+Drain\s+Leader/);
      for (const w of ["worker-a", "worker-b"]) expect(lines.find((l) => l.includes(w))).toMatch(/^\w{25}\s+worker-\w\s+Ready\s+Active\s+\S+$/);
      const ids = (await dockerOk(t(), ["node", "ls", "-q"])).trim().split("\n");
      expect(ids).toHaveLength(3);
      expect(ids.every((id) => /^[0-9a-z]{25}$/.test(id))).toBe(true);
      expect((await dockerOk(t(), ["node", "inspect", "--format", "{{.Status.State}} {{.Spec.Role}}", "worker-a"])).trim()).toBe("ready worker");
      const workers = await dockerOk(t(), ["node", "ls", "--filter", "role=worker", "--format", "{{.Hostname}}"]);
      expect(workers.trim().split("\n").sort()).toEqual(["worker-a", "worker-b"]);
    });

    test("node update: drain and a label; the manager and promotion are refused clearly", async () => {
      await dockerOk(t(), ["node", "update", "--availability", "drain", "--label-add", "zone=a", "worker-b"]);
      expect((await dockerOk(t(), ["node", "inspect", "--format", "{{.Spec.Availability}} {{json .Spec.Labels}}", "worker-b"])).trim()).toBe('drain {"zone":"a"}');
      await dockerOk(t(), ["node", "update", "--availability", "active", "--label-rm", "zone", "worker-b"]);
      expect((await dockerOk(t(), ["node", "inspect", "--format", "{{.Spec.Availability}} {{json .Spec.Labels}}", "worker-b"])).trim()).toBe("active {}");
      const promote = await docker(t(), ["node", "promote", "worker-b"]);
      expect(promote.code).not.toBe(0);
      expect(promote.stderr).toMatch(/promote\/demote is not supported/);
      const mgr = (await dockerOk(t(), ["info", "--format", "{{.Swarm.NodeID}}"])).trim();
      const drainManager = await docker(t(), ["node", "update", "--availability", "active", mgr]);
      expect(drainManager.code).not.toBe(0);
      expect(drainManager.stderr).toMatch(/is vipmesh's manager/);
    });

    test("swarm join-token prints the join command with vipmesh's token", async () => {
      const out = await dockerOk(t(), ["swarm", "join-token", "worker"]);
      expect(out).toContain(`docker swarm join --token ${h.token} ${h.address}`);
      expect((await dockerOk(t(), ["swarm", "join-token", "-q", "worker"])).trim()).toBe(h.token);
    });

    test("network create, ls with filters, inspect, rm", async () => {
      const name = `net-${via}`;
      const id = (await dockerOk(t(), ["network", "create", "-d", "overlay", "--subnet", via === "unix" ? "10.9.0.0/24" : "10.9.1.0/24", "--opt", "encrypted", "--label", "a=b", name])).trim();
      try {
        expect(id).toMatch(/^[0-9a-z]{25}$/);
        const ls = await dockerOk(t(), ["network", "ls"]);
        expect(ls).toMatch(new RegExp(`${id.slice(0, 12)}\\s+${name}\\s+overlay\\s+swarm`));
        expect(ls).toMatch(/\s+ingress\s+overlay\s+swarm/);
        expect((await dockerOk(t(), ["network", "ls", "--filter", "label=a=b", "--format", "{{.Name}}"])).trim()).toBe(name);
        expect((await dockerOk(t(), ["network", "ls", "-q", "--filter", "label=a"])).trim()).toBe(id.slice(0, 12));
        expect((await dockerOk(t(), ["network", "ls", "-q", "--filter", "label=a=c"])).trim()).toBe("");
        expect((await dockerOk(t(), ["network", "inspect", "--format", "{{json .IPAM.Config}}", name])).trim()).toBe(
          `[{"Subnet":"${via === "unix" ? "10.9.0.0/24" : "10.9.1.0/24"}","Gateway":"${via === "unix" ? "10.9.0.1" : "10.9.1.1"}"}]`,
        );
        const opts = JSON.parse(await dockerOk(t(), ["network", "inspect", "--format", "{{json .Options}}", name])) as Record<string, string>;
        expect(opts).toHaveProperty("encrypted");
        expect(Number(opts["com.docker.network.driver.overlay.vxlanid_list"])).toBeGreaterThanOrEqual(4096);
        const dup = await docker(t(), ["network", "create", "-d", "overlay", name]);
        expect(dup.code).not.toBe(0);
        expect(dup.stderr).toMatch(/already exists/);
      } finally {
        await docker(t(), ["network", "rm", name]);
      }
      expect(await dockerOk(t(), ["network", "ls", "--format", "{{.Name}}"])).not.toContain(name);
      const gone = await docker(t(), ["network", "inspect", name]);
      expect(gone.code).not.toBe(0);
    });

    test("node rm --force removes a node", async () => {
      const agent = await h.addAgent(`doomed-${via}`);
      await dockerOk(t(), ["node", "inspect", `doomed-${via}`]);
      agent.stop();
      await dockerOk(t(), ["node", "rm", "--force", `doomed-${via}`]);
      expect(await dockerOk(t(), ["node", "ls", "--format", "{{.Hostname}}"])).not.toContain(`doomed-${via}`);
    });
  });
}

describe("the read-only identity", () => {
  test("may list but not create: 403 with Docker's message", async () => {
    const ro = h.docker!.readonly;
    expect(await dockerOk(ro, ["network", "ls", "--format", "{{.Name}}"])).toContain("ingress");
    const create = await docker(ro, ["network", "create", "-d", "overlay", "ro-net"]);
    expect(create.code).not.toBe(0);
    expect(create.stderr).toMatch(/readonly certificate may not call CreateNetwork/);
    const r = await raw(ro, "POST", "/v1.47/networks/create", JSON.stringify({ Name: "ro-net", Driver: "overlay" }));
    expect(r.status).toBe(403);
    expect(message(r)).toMatch(/may not call CreateNetwork/);
    // a reader sees the swarm without its join tokens
    const swarm = JSON.parse((await raw(ro, "GET", "/v1.47/swarm")).body) as { JoinTokens: { Worker: string } };
    expect(swarm.JoinTokens.Worker).toBe("");
    expect(await dockerOk(ro, ["network", "ls", "--format", "{{.Name}}"])).not.toContain("ro-net");
  });
});

describe("raw requests", () => {
  const u = () => h.docker!.unix;

  test("_ping and headers", async () => {
    const head = await raw(u(), "HEAD", "/_ping");
    expect(head.status).toBe(200);
    expect(head.headers["api-version"]).toBe("1.47");
    expect(head.headers.ostype).toBe("linux");
    expect(head.headers.swarm).toBe("active/manager");
    const get = await raw(u(), "GET", "/v1.24/_ping");
    expect(get.body).toBe("OK");
    expect(get.headers.server).toMatch(/^vipmesh\//);
  });

  test("bad requests get Docker-shaped errors and leave nothing behind", async () => {
    const before = await everything(h);
    const cases: [string, string, string | Buffer | undefined, number, RegExp][] = [
      ["POST", "/v1.47/networks/create", "{not json", 400, /not valid JSON/],
      ["POST", "/v1.47/networks/create", JSON.stringify({ Name: 42 }), 400, /Name/],
      ["POST", "/v1.47/networks/create", JSON.stringify({ Name: "x1", Labels: "a=b" }), 400, /Labels must be an object/],
      ["POST", "/v1.47/networks/create", JSON.stringify({ Name: "x2", Driver: "bridge" }), 400, /only the overlay driver/],
      ["POST", "/v1.47/networks/create", JSON.stringify({ Name: "x3", Attachable: true }), 400, /attachable/],
      ["POST", "/v1.47/networks/create", JSON.stringify({ Name: "ingress", Driver: "overlay" }), 409, /already exists/],
      ["POST", "/v1.47/networks/create", JSON.stringify({ Name: "x4", Labels: { big: "x".repeat(2 * 1024 * 1024) } }), 413, /limit/],
      ["DELETE", "/v1.47/networks/nosuchnet", undefined, 404, /not found/],
      ["GET", "/v1.47/networks/nosuchnet", undefined, 404, /not found/],
      ["POST", `/v1.47/nodes/${before.nodes[0]!.id}/update`, JSON.stringify({ Availability: "drain" }), 400, /version/],
      ["POST", `/v1.47/nodes/${before.nodes[0]!.id}/update?version=${before.nodes[0]!.version}`, JSON.stringify({ Availability: "pause" }), 400, /no pause/],
      ["POST", `/v1.47/nodes/${before.nodes[0]!.id}/update?version=${before.nodes[0]!.version}`, JSON.stringify({ Availability: 7 }), 400, /Availability/],
      ["GET", "/v1.12/info", undefined, 400, /client version 1.12 is too old. Minimum supported API version is 1.24/],
      ["GET", "/v1.99/info", undefined, 400, /too new/],
      ["GET", "/v1.47/nosuchthing", undefined, 404, /^page not found$/],
      ["GET", "/v1.47/distribution/docker.io/library/nginx:latest/json", undefined, 404, /nginx:latest/],
    ];
    for (const [method, path, body, status, pattern] of cases) {
      const r = await raw(u(), method, path, body);
      expect({ path, body: typeof body === "string" ? body.slice(0, 60) : body, status: r.status }).toEqual({ path, body: typeof body === "string" ? body.slice(0, 60) : body, status });
      expect(message(r)).toMatch(pattern);
    }
    expect(await everything(h)).toEqual(before);
  });

  test("secrets and configs are empty lists", async () => {
    for (const p of ["/v1.47/secrets", "/v1.47/configs?filters=%7B%22label%22%3A%7B%22a%22%3Atrue%7D%7D"]) {
      const r = await raw(u(), "GET", p);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body)).toEqual([]);
    }
  });
});

describe("an --insecure manager", () => {
  test("serves the Engine API on a unix socket only, refusing TCP clearly", async () => {
    const dir = tempDir();
    try {
      await expect(startManager({ dataDir: dir.path, listen: ["127.0.0.1:0"], insecure: true, dockerApi: ["tcp://127.0.0.1:0"] })).rejects.toThrow(
        /--insecure serves the Engine API only on a unix socket/,
      );
      const m = await startManager({ dataDir: dir.path, listen: ["127.0.0.1:0"], insecure: true, dockerApi: [`unix:${dir.path}/docker.sock`] });
      try {
        const t = { host: m.dockerApi[0]! };
        expect((await dockerOk(t, ["info", "--format", "{{.Swarm.LocalNodeState}}"])).trim()).toBe("active");
        // no CA, so no join tokens: /swarm answers without them rather than fail
        expect(JSON.parse((await raw(t, "GET", "/v1.47/swarm")).body).JoinTokens).toEqual({ Worker: "", Manager: "" });
      } finally {
        await m.stop();
      }
    } finally {
      dir.remove();
    }
  });
});
