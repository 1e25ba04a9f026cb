// The server's rules on their own: version prefixes, route params, errors.

import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { alreadyExists, VipmeshError } from "@vipmesh/core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { parseFilters, matchesLabels } from "../src/filters.ts";
import { type Route, sendNoContent } from "../src/http.ts";
import type { ClusterOps } from "../src/ops.ts";
import { engineApiHandler, errorResponse, stripVersion } from "../src/server.ts";

describe("stripVersion", () => {
  test("takes /v1.24 to /v1.50 and none", () => {
    expect(stripVersion("/v1.24/info")).toEqual({ path: "/info", version: "1.24" });
    expect(stripVersion("/v1.50/services/x")).toEqual({ path: "/services/x", version: "1.50" });
    expect(stripVersion("/info")).toEqual({ path: "/info", version: "1.47" });
  });
  test("refuses others in Docker's words", () => {
    expect(() => stripVersion("/v1.12/info")).toThrow("client version 1.12 is too old. Minimum supported API version is 1.24");
    expect(() => stripVersion("/v1.51/info")).toThrow("client version 1.51 is too new");
  });
});

test("errors map to Docker's codes", () => {
  expect(errorResponse(alreadyExists("x"))).toEqual({ status: 409, message: "x" });
  expect(errorResponse(new VipmeshError("aborted", "update out of sequence")).status).toBe(500);
  expect(errorResponse(new VipmeshError("failed_precondition", "in use")).status).toBe(400);
  expect(errorResponse(new Error("boom"))).toEqual({ status: 500, message: "boom" });
});

test("filters: both of Docker's encodings; labels as k or k=v", () => {
  const f = parseFilters(new URLSearchParams({ filters: JSON.stringify({ label: { "a=b": true, c: true }, name: ["x"] }) }));
  expect(f.get("label")).toEqual(["a=b", "c"]);
  expect(f.get("name")).toEqual(["x"]);
  expect(matchesLabels({ a: "b", c: "" }, f.get("label"))).toBe(true);
  expect(matchesLabels({ a: "b" }, f.get("label"))).toBe(false);
  expect(() => parseFilters(new URLSearchParams({ filters: "{" }))).toThrow(/not JSON/);
});

describe("the handler", () => {
  let server: Server;
  let port = 0;
  const seen: Record<string, string>[] = [];
  const routes: Route[] = [
    { method: "GET", path: "/things/{id}", op: "Read", handle: (ctx) => (seen.push(ctx.params), { id: ctx.params.id }) },
    { method: "GET", path: "/distribution/{name*}/json", op: "Read", handle: (ctx) => ({ name: ctx.params.name }) },
    { method: "DELETE", path: "/things/{id}", op: "Write", handle: (ctx) => sendNoContent(ctx.res) },
    { method: "POST", path: "/things", op: "Write", handle: async (ctx) => ({ got: await ctx.body() }) },
  ];
  beforeAll(async () => {
    const handler = engineApiHandler({
      ops: {} as ClusterOps,
      routes,
      authorize: (req, op) => {
        if (op === "Write" && req.headers["x-role"] === "readonly") throw new VipmeshError("permission_denied", "a readonly certificate may not call Write");
      },
      bodyLimitBytes: 100,
    });
    server = createServer(handler);
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const call = (method: string, path: string, body?: string, headers: Record<string, string> = {}) =>
    new Promise<{ status: number; body: string; headers: Record<string, unknown> }>((resolve, reject) => {
      const req = request({ host: "127.0.0.1", port, method, path, headers }, (res) => {
        let data = "";
        res.on("data", (c: Buffer) => (data += c.toString()));
        res.on("end", () => resolve({ status: res.statusCode!, body: data, headers: res.headers }));
      });
      req.on("error", reject);
      req.end(body);
    });

  test("params, the rest-of-path param, headers", async () => {
    const r = await call("GET", "/v1.47/things/a%20b");
    expect(JSON.parse(r.body)).toEqual({ id: "a b" });
    expect(r.headers["api-version"]).toBe("1.47");
    expect(r.headers["docker-experimental"]).toBe("false");
    expect(JSON.parse((await call("GET", "/distribution/docker.io/library/nginx:1/json")).body)).toEqual({ name: "docker.io/library/nginx:1" });
    const malformed = await call("GET", "/things/a%zz");
    expect(malformed.status).toBe(400);
    expect(JSON.parse(malformed.body).message).toMatch(/malformed %-escape/);
  });

  test("404 page not found, 405 for another method, 204", async () => {
    const nf = await call("GET", "/nothing");
    expect(nf.status).toBe(404);
    expect(JSON.parse(nf.body)).toEqual({ message: "page not found" });
    expect((await call("PUT", "/things/x")).status).toBe(405);
    expect((await call("DELETE", "/things/x")).status).toBe(204);
  });

  test("bodies: JSON, malformed 400, over the limit 413; authorization 403", async () => {
    expect(JSON.parse((await call("POST", "/things", '{"a":1}')).body)).toEqual({ got: { a: 1 } });
    expect((await call("POST", "/things", "{")).status).toBe(400);
    const big = await call("POST", "/things", JSON.stringify({ a: "x".repeat(200) }));
    expect(big.status).toBe(413);
    expect(JSON.parse(big.body).message).toMatch(/limit/);
    const denied = await call("POST", "/things", "{}", { "x-role": "readonly" });
    expect(denied.status).toBe(403);
    expect(JSON.parse(denied.body)).toEqual({ message: "a readonly certificate may not call Write" });
  });
});
