// The Engine API at its edges: what the real docker CLI sends at its
// defaults (no spurious warnings), what a careless or hostile client sends
// (a Docker-shaped 400, never a 500, nothing half-made), and who may call
// what over TLS (every route, for the read-only identity and for a worker
// node's own certificate). One manager for the file, simulated agents.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { ROUTES } from "@vipmesh/engine-api";
import { type DockerTarget, docker, dockerOk, tempDir } from "@vipmesh/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { POLICY } from "../src/security/authz.ts";
import { type Harness, startHarness, waitFor } from "./harness.ts";

let h: Harness;
let sock: DockerTarget;
const dir = tempDir();
/** A worker node's own identity (the first agent's certificate), in Docker's file names. */
const workerCerts = join(dir.path, "worker");

beforeAll(async () => {
  h = await startHarness({ dockerApi: true, heartbeatPeriodMs: 1000 });
  sock = h.docker!.unix;
  const agent = await h.addAgent("edge1");
  await h.addAgent("edge2");
  const id = agent.identity!.source.identity;
  mkdirSync(workerCerts);
  writeFileSync(join(workerCerts, "ca.pem"), id.caPem);
  writeFileSync(join(workerCerts, "cert.pem"), id.certPem);
  writeFileSync(join(workerCerts, "key.pem"), id.keyPem);
}, 30_000);
afterAll(async () => {
  await h?.close();
  dir.remove();
});

interface Raw {
  status: number;
  body: string;
}

/** One request: over the unix socket, or over TLS with the identity in `certDir`. */
function raw(method: string, path: string, body?: string, certDir?: string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const headers = body === undefined ? {} : { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) };
    const onResponse = (res: import("node:http").IncomingMessage) => {
      let data = "";
      res.on("data", (c: Buffer) => (data += c.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: data }));
    };
    let req: import("node:http").ClientRequest;
    if (!certDir) {
      req = httpRequest({ socketPath: sock.host.slice("unix://".length), method, path, headers }, onResponse);
    } else {
      const url = new URL(h.docker!.tls.host.replace(/^tcp:/, "https:"));
      const pem = (f: string) => readFileSync(join(certDir, f));
      req = httpsRequest({ host: url.hostname, port: url.port, method, path, headers, ca: pem("ca.pem"), cert: pem("cert.pem"), key: pem("key.pem") }, onResponse);
    }
    req.on("error", reject);
    req.end(body);
  });
}

const message = (r: Raw) => (JSON.parse(r.body) as { message: string }).message;
const names = async (what: "services" | "networks") =>
  (JSON.parse((await raw("GET", `/v1.47/${what}`)).body) as { Spec?: { Name: string }; Name?: string }[]).map((o) => o.Spec?.Name ?? o.Name).sort();

describe("what the docker CLI sends at its defaults", () => {
  it("service create --isolation default --stop-signal SIGTERM: no warning; a real one is still named", async () => {
    const r = await docker(sock, [
      "service", "create", "--detach", "--no-resolve-image", "--name", "defaults", "--isolation", "default",
      "--stop-signal", "SIGTERM", "--stop-grace-period", "10s", "--read-only=false", "--init=false", "busybox", "sleep", "1000",
    ]);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(/not supported by vipmesh/);
    const u = await docker(sock, ["service", "update", "--detach", "--no-resolve-image", "--stop-signal", "SIGINT", "defaults"]);
    expect(u.code).toBe(0);
    expect(u.stderr).toMatch(/StopSignal is not supported by vipmesh and was ignored/);
    await dockerOk(sock, ["service", "rm", "defaults"]);
  });

  it("a compose stack with a healthcheck, aliases, host ports and stop_signal deploys (twice) without warnings, lists and goes", async () => {
    const compose = join(dir.path, "stack.yml");
    writeFileSync(
      compose,
      `version: "3.8"
services:
  web:
    image: vipmesh/whoami
    ports: ["8181:80", { target: 81, published: 8182, mode: host }]
    stop_signal: SIGTERM
    stop_grace_period: 10s
    healthcheck: { test: ["CMD-SHELL", "true"], interval: 10s, retries: 3 }
    networks: { front: { aliases: [www] } }
    deploy:
      replicas: 2
      restart_policy: { condition: on-failure, max_attempts: 3 }
      update_config: { parallelism: 1, order: start-first }
networks:
  front: {}
`,
    );
    // the CLI prints an update's warnings, not a create's: deploy again to see them
    for (let i = 0; i < 2; i++) {
      const deploy = await docker(sock, ["stack", "deploy", "--detach=true", "-c", compose, "edge"]);
      expect(deploy.code, deploy.stderr).toBe(0);
      expect(deploy.stderr).not.toMatch(/not supported by vipmesh/);
    }
    await waitFor("edge_web 2/2", async () => /edge_web\s+replicated\s+2\/2/.test(await dockerOk(sock, ["stack", "services", "edge"])), 15_000);
    expect(await dockerOk(sock, ["stack", "ls"])).toMatch(/^edge\s+1$/m);
    expect((await dockerOk(sock, ["stack", "ps", "--format", "{{.Name}} {{.DesiredState}}", "edge"])).trim().split("\n").sort()).toEqual(["edge_web.1 Running", "edge_web.2 Running"]);
    await dockerOk(sock, ["stack", "rm", "edge"]);
    expect(await names("services")).not.toContain("edge_web");
    expect(await names("networks")).not.toContain("edge_front");
  }, 30_000);
});

describe("a careless or hostile client", () => {
  it("a body nested 100k deep is 400, not a 500 from a blown stack, and makes nothing", async () => {
    const before = await names("services");
    const deep = "{\"a\":".repeat(100_000) + "0" + "}".repeat(100_000);
    const body = `{"Name":"deep","TaskTemplate":{"ContainerSpec":{"Image":"busybox","Args":["x"],"Privileges":${deep}}}}`;
    const r = await raw("POST", "/v1.47/services/create", body);
    expect(r.status).toBe(400);
    expect(message(r)).toMatch(/nests deeper than 64 levels/);
    expect(await names("services")).toEqual(before);
  });

  it("a label filter naming Object's properties matches nothing; an unknown filter is 400 on every list", async () => {
    await dockerOk(sock, ["network", "create", "-d", "overlay", "--label", "team=a", "labelled"]);
    for (const label of ["constructor", "hasOwnProperty", "__proto__"]) {
      expect((await dockerOk(sock, ["network", "ls", "-q", "--filter", `label=${label}`])).trim()).toBe("");
      expect((await dockerOk(sock, ["node", "ls", "-q", "--filter", `node.label=${label}`])).trim()).toBe("");
    }
    expect((await dockerOk(sock, ["network", "ls", "--format", "{{.Name}}", "--filter", "label=team=a"])).trim()).toBe("labelled");
    for (const what of ["network", "node", "service"]) {
      const r = await docker(sock, [what, "ls", "--filter", "lable=team=a"]);
      expect(r.code, `${what} ls`).not.toBe(0);
      expect(r.stderr).toMatch(/invalid filter 'lable'/);
    }
    await dockerOk(sock, ["network", "rm", "labelled"]);
  });
});

describe("who may call what over TLS", () => {
  /** Each route with its {params} filled: what a caller without the right gets 403 on, before anything runs. */
  const calls = ROUTES.map((r) => ({ ...r, url: `/v1.47${r.path.replace(/\{(\w+)\*?\}/g, "nosuch")}` }));
  const may = (role: string, op: string) => {
    const access = POLICY.get(`/vipmesh.v1.ClusterService/${op}`);
    return access === "anyone" || Boolean(access?.includes(role as never));
  };

  it("the read-only identity: 403 on every write, on logs and on join tokens; never 403 on a read", async () => {
    const ro = h.docker!.readonly.certDir!;
    for (const c of calls) {
      const r = await raw(c.method, c.url, c.method === "POST" ? "{}" : undefined, ro);
      if (may("readonly", c.op)) expect(r.status, `${c.method} ${c.path}`).not.toBe(403);
      else expect(r.status, `${c.method} ${c.path}`).toBe(403);
    }
    expect(may("readonly", "ServiceLogs") || may("readonly", "GetJoinToken") || may("readonly", "CreateService")).toBe(false);
    const swarm = JSON.parse((await raw("GET", "/v1.47/swarm", undefined, ro)).body) as { JoinTokens: Record<string, string> };
    expect(swarm.JoinTokens).toEqual({ Worker: "", Manager: "" });
  });

  it("a worker node's own certificate: POLICY gives workers no ClusterService call, so 403 on every route", async () => {
    for (const c of calls) {
      expect(may("worker", c.op), c.op).toBe(false);
      const r = await raw(c.method, c.url, c.method === "POST" ? "{}" : undefined, workerCerts);
      expect(r.status, `${c.method} ${c.path}`).toBe(403);
      if (c.method !== "HEAD") expect(message(r)).toMatch(/a worker certificate may not call/);
    }
    const cli = await docker({ host: h.docker!.tls.host, certDir: workerCerts }, ["service", "ls"]);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toMatch(/worker certificate may not call/);
  });

  it("a client with no certificate is refused in the TLS handshake", async () => {
    const url = new URL(h.docker!.tls.host.replace(/^tcp:/, "https:"));
    const ca = readFileSync(join(h.docker!.tls.certDir!, "ca.pem"));
    const outcome = await new Promise<string>((resolve) => {
      const req = httpsRequest({ host: url.hostname, port: url.port, path: "/_ping", ca }, (res) => resolve(`answered ${res.statusCode}`));
      req.on("error", (err) => resolve(`refused: ${err.message}`));
      req.end();
    });
    expect(outcome).toMatch(/^refused/);
  });
});
