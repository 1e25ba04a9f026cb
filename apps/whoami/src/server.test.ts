import { createSocket } from "node:dgram";
import { Agent, type ClientRequest, type IncomingMessage, request } from "node:http";
import { createServer } from "node:net";
import { hostname, networkInterfaces } from "node:os";
import { afterEach, describe, expect, it } from "vitest";
import { type WhoamiServer, startWhoami } from "./server.ts";

const HOST = "127.0.0.1";
const running: WhoamiServer[] = [];
const agents: Agent[] = [];

afterEach(async () => {
  for (const agent of agents.splice(0)) agent.destroy();
  await Promise.all(running.splice(0).map((s) => s.close()));
});

async function start(env: Record<string, string> = {}): Promise<WhoamiServer> {
  const server = await startWhoami({ port: 0, host: HOST, env });
  running.push(server);
  return server;
}

interface Answer {
  status: number;
  headers: IncomingMessage["headers"];
  body: string;
}

function readAnswer(req: ClientRequest): Promise<Answer> {
  return new Promise((resolve, reject) => {
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }),
      );
    });
  });
}

function http(
  port: number,
  opts: { method?: string; path?: string; body?: string; headers?: Record<string, string>; agent?: Agent } = {},
): Promise<Answer> {
  const req = request({
    host: HOST,
    port,
    method: opts.method ?? "GET",
    path: opts.path ?? "/",
    headers: opts.headers,
    agent: opts.agent ?? false,
  });
  const answer = readAnswer(req);
  req.end(opts.body);
  return answer;
}

function udpAsk(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = createSocket("udp4");
    socket.on("error", reject);
    socket.on("message", (msg) => {
      socket.close();
      resolve(msg.toString("utf8"));
    });
    socket.send("who?", port, HOST);
  });
}

describe("GET /", () => {
  it("says who answered, then echoes the request", async () => {
    const server = await start({ VIPMESH_TASK_ID: "t-1", VIPMESH_SERVICE: "web" });
    const { status, headers, body } = await http(server.port, { path: "/a/b?c=1", headers: { "X-Probe": "42" } });
    expect(status).toBe(200);
    expect(headers["content-type"]).toBe("text/plain; charset=utf-8");

    const lines = body.trimEnd().split("\n");
    const ips = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((a) => `IP: ${a.address}`));
    expect(ips).toContain("IP: 127.0.0.1");
    expect(lines.slice(0, 3 + ips.length)).toEqual([`Hostname: ${hostname()}`, "Task: t-1", "Service: web", ...ips]);

    const rest = lines.slice(3 + ips.length);
    expect(rest[0]).toMatch(/^RemoteAddr: 127\.0\.0\.1:\d+$/);
    expect(rest[1]).toBe("GET /a/b?c=1 HTTP/1.1");
    expect(rest.slice(2)).toContain(`Host: ${HOST}:${server.port}`);
    expect(rest.slice(2)).toContain("X-Probe: 42");
  });

  it("prints - for a task and service it was not given, and answers UDP with the hostname", async () => {
    const server = await start();
    const { body } = await http(server.port);
    expect(body).toContain("\nTask: -\nService: -\n");
    expect(server.task).toBe(hostname());
    expect(await udpAsk(server.port)).toBe(`task ${hostname()}\n`);
  });

  it("keeps the connection alive between requests", async () => {
    const server = await start();
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    const remote = async () => (await http(server.port, { agent })).body.match(/^RemoteAddr: (.*)$/m)?.[1];
    const first = await remote();
    const second = await remote();
    expect(first).toMatch(/^127\.0\.0\.1:\d+$/);
    // The same client port both times: the server saw one connection.
    expect(second).toBe(first);
  });
});

describe("/health", () => {
  it("starts ok and flips with POST fail / POST ok", async () => {
    const server = await start();
    expect(await http(server.port, { path: "/health" })).toMatchObject({ status: 200, body: "ok" });

    expect(await http(server.port, { method: "POST", path: "/health", body: "fail" })).toMatchObject({ status: 200, body: "fail" });
    expect(await http(server.port, { path: "/health" })).toMatchObject({ status: 503, body: "fail" });
    // Only /health fails: the page itself still answers.
    expect((await http(server.port)).status).toBe(200);

    expect(await http(server.port, { method: "POST", path: "/health", body: "ok\n" })).toMatchObject({ status: 200, body: "ok" });
    expect(await http(server.port, { path: "/health" })).toMatchObject({ status: 200, body: "ok" });
  });

  it("refuses any other body with 400 and keeps its state", async () => {
    const server = await start();
    await http(server.port, { method: "POST", path: "/health", body: "fail" });

    const bad = await http(server.port, { method: "POST", path: "/health", body: "maybe" });
    expect(bad.status).toBe(400);
    expect(bad.body).toBe('POST /health wants a body of "ok" or "fail", got "maybe"\n');
    const long = await http(server.port, { method: "POST", path: "/health", body: "ok".repeat(100) });
    expect(long.status).toBe(400);
    expect(long.body).toContain("got more than 64 bytes");

    expect(await http(server.port, { path: "/health" })).toMatchObject({ status: 503, body: "fail" });
  });

  it("answers 405 to other methods", async () => {
    const server = await start();
    const answer = await http(server.port, { method: "DELETE", path: "/health" });
    expect(answer.status).toBe(405);
    expect(answer.headers.allow).toBe("GET, HEAD, POST");
  });
});

describe("UDP", () => {
  it("answers each datagram with the task ID", async () => {
    const server = await start({ VIPMESH_TASK_ID: "t-7" });
    expect(server.task).toBe("t-7");
    expect(await udpAsk(server.port)).toBe("task t-7\n");
    expect(await udpAsk(server.port)).toBe("task t-7\n");
  });
});

describe("close", () => {
  it("drops idle keep-alive connections and frees the port for TCP and UDP", async () => {
    const server = await startWhoami({ port: 0, host: HOST, env: {} });
    const agent = new Agent({ keepAlive: true });
    agents.push(agent);
    await http(server.port, { agent }); // leaves an idle connection open

    await server.close();
    await expect(http(server.port)).rejects.toMatchObject({ code: "ECONNREFUSED" });
    // Both listeners are gone: the same port can be taken again.
    const again = await startWhoami({ port: server.port, host: HOST, env: {} });
    await again.close();
  });

  it("lets a request in flight finish, then closes its connection", async () => {
    const server = await startWhoami({ port: 0, host: HOST, env: {} });
    // A keep-alive client, so "Connection: close" in the answer comes from the closing server.
    const agent = new Agent({ keepAlive: true });
    agents.push(agent);
    const req = request({
      host: HOST,
      port: server.port,
      method: "POST",
      path: "/health",
      agent,
      headers: { "Content-Length": "4", Expect: "100-continue" },
    });
    const answer = readAnswer(req);
    req.flushHeaders();
    // 100 Continue means the server has the request; only its body is missing.
    await new Promise((resolve) => req.once("continue", resolve));

    const closed = server.close();
    req.end("fail");
    expect(await answer).toMatchObject({ status: 200, body: "fail", headers: { connection: "close" } });
    await closed;
  });

  it("can be called twice", async () => {
    const server = await startWhoami({ port: 0, host: HOST, env: {} });
    await Promise.all([server.close(), server.close()]);
  });
});

describe("start", () => {
  it("refuses a TCP port in use", async () => {
    const server = await start();
    await expect(startWhoami({ port: server.port, host: HOST })).rejects.toMatchObject({
      name: "ListenError",
      code: "EADDRINUSE",
      message: `cannot listen on ${HOST}:${server.port}/tcp: the port is already in use`,
    });
  });

  it("refuses a UDP port in use and gives its TCP port back", async () => {
    const holder = createSocket("udp4");
    await new Promise<void>((resolve) => holder.bind(0, HOST, resolve));
    const { port } = holder.address();
    try {
      await expect(startWhoami({ port, host: HOST })).rejects.toMatchObject({
        code: "EADDRINUSE",
        message: `cannot listen on ${HOST}:${port}/udp: the port is already in use`,
      });
      // The TCP listener it opened first was closed again.
      const tcp = createServer();
      await new Promise<void>((resolve, reject) => tcp.once("error", reject).listen(port, HOST, resolve));
      await new Promise((resolve) => tcp.close(resolve));
    } finally {
      holder.close();
    }
  });

  it("rejects a port out of range", async () => {
    await expect(startWhoami({ port: 70000 })).rejects.toThrow("port must be a whole number from 0 to 65535, got 70000");
  });
});
