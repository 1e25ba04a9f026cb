// The server's rules on their own: version prefixes, route params, errors.

import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { alreadyExists, VipmeshError } from "@vipmesh/core";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { connect } from "node:net";
import { parseFilters, matchesLabels } from "../src/filters.ts";
import { type Route, sendNoContent } from "../src/http.ts";
import type { ClusterOps } from "../src/ops.ts";
import { BODY_MAX_DEPTH, engineApiHandler, errorResponse, jsonDepth, stripVersion } from "../src/server.ts";

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
  const known = new Set(["label", "name"]);
  const f = parseFilters(new URLSearchParams({ filters: JSON.stringify({ label: { "a=b": true, c: true }, name: ["x"] }) }), known);
  expect(f.get("label")).toEqual(["a=b", "c"]);
  expect(f.get("name")).toEqual(["x"]);
  expect(matchesLabels({ a: "b", c: "" }, f.get("label"))).toBe(true);
  expect(matchesLabels({ a: "b" }, f.get("label"))).toBe(false);
  expect(() => parseFilters(new URLSearchParams({ filters: "{" }), known)).toThrow(/not JSON/);
});

test("filters: an unknown filter is Docker's 'invalid filter', not a list of everything", () => {
  expect(() => parseFilters(new URLSearchParams({ filters: '{"lable":["a"]}' }), new Set(["label"]))).toThrow("invalid filter 'lable'");
  expect(() => parseFilters(new URLSearchParams({ filters: '{"__proto__":["a"]}' }), new Set(["label"]))).toThrow("invalid filter '__proto__'");
});

test("a label filter matches the object's own labels, never Object's properties", () => {
  for (const k of ["constructor", "hasOwnProperty", "__proto__", "toString"]) {
    expect(matchesLabels({ a: "b" }, [k])).toBe(false);
    expect(matchesLabels({ a: "b" }, [`${k}=x`])).toBe(false);
  }
  expect(matchesLabels(JSON.parse('{"__proto__":"x"}'), ["__proto__=x"])).toBe(true);
});

test("jsonDepth counts nesting, not brackets inside strings", () => {
  expect(jsonDepth('{"a":[1,{"b":2}]}', 64)).toBe(3);
  expect(jsonDepth('{"a":"[[[{{{\\\"[["}', 64)).toBe(1);
  expect(jsonDepth("[".repeat(100000) + "]".repeat(100000), BODY_MAX_DEPTH)).toBe(BODY_MAX_DEPTH + 1);
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
    {
      method: "POST",
      path: "/partial",
      op: "Write",
      handle: (ctx) => ctx.body().catch((err: unknown) => (partial.push(errorResponse(err)), undefined)),
    },
  ];
  /** What reading /partial's body ended with. */
  const partial: { status: number; message: string }[] = [];
  beforeAll(async () => {
    const handler = engineApiHandler({
      ops: {} as ClusterOps,
      routes,
      authorize: (req, op) => {
        if (op === "Write" && req.headers["x-role"] === "readonly") throw new VipmeshError("permission_denied", "a readonly certificate may not call Write");
      },
      bodyLimitBytes: 150,
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

  test("a body nested too deep is 400 before any route walks it", async () => {
    const deep = await call("POST", "/things", "[".repeat(BODY_MAX_DEPTH + 1) + "]".repeat(BODY_MAX_DEPTH + 1));
    expect(deep.status).toBe(400);
    expect(JSON.parse(deep.body).message).toMatch(/deeper than 64 levels/);
    expect((await call("POST", "/things", "[".repeat(BODY_MAX_DEPTH) + "]".repeat(BODY_MAX_DEPTH))).status).toBe(200);
  });

  test("a client that goes away mid-body is the client's mistake (400), not a server error", async () => {
    const socket = connect(port, "127.0.0.1", () => {
      socket.write('POST /partial HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"Name":');
      setTimeout(() => socket.destroy(), 50);
    });
    socket.on("error", () => {});
    await expect.poll(() => partial.length, { timeout: 3000 }).toBe(1);
    expect(partial[0]!.status).toBe(400);
    expect(partial[0]!.message).toMatch(/not received whole/);
  });
});
