import { describe, expect, it } from "vitest";
import { boundedChunks, parseBearerChallenge, readCapped, registryBaseUrl } from "./registry.ts";

describe("registry", () => {
  it("talks to Docker Hub's API host for docker.io, HTTPS elsewhere, HTTP only on loopback", () => {
    expect(registryBaseUrl("docker.io")).toBe("https://registry-1.docker.io");
    expect(registryBaseUrl("ghcr.io")).toBe("https://ghcr.io");
    expect(registryBaseUrl("registry.local:5000")).toBe("https://registry.local:5000");
    expect(registryBaseUrl("localhost:5000")).toBe("http://localhost:5000");
    expect(registryBaseUrl("127.0.0.1:5000")).toBe("http://127.0.0.1:5000");
  });

  it("parses a bearer challenge", () => {
    expect(
      parseBearerChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"'),
    ).toEqual({ realm: "https://auth.docker.io/token", service: "registry.docker.io", scope: "repository:library/nginx:pull" });
    expect(parseBearerChallenge("bearer realm=https://r/t")).toEqual({ realm: "https://r/t" });
    expect(parseBearerChallenge('Basic realm="x"')).toBeUndefined();
    expect(parseBearerChallenge("Bearer service=x")).toBeUndefined();
  });
});

async function drain(chunks: AsyncIterable<Buffer>): Promise<number> {
  let n = 0;
  for await (const c of chunks) n += c.length;
  return n;
}

describe("bounded registry bodies", () => {
  it("passes a body within its bounds through", async () => {
    async function* body() {
      yield new Uint8Array(10);
      yield new Uint8Array(5);
    }
    expect(await drain(boundedChunks(body(), { max: 15, idleMs: 1000, what: "layer x" }))).toBe(15);
  });

  it("stops an endless body once past its size, and aborts the request", async () => {
    let sent = 0;
    let cancelled = false;
    async function* endless() {
      for (;;) {
        sent++;
        yield new Uint8Array(1 << 16);
      }
    }
    await expect(
      drain(boundedChunks(endless(), { max: 100_000, idleMs: 1000, what: "layer x", cancel: () => (cancelled = true) })),
    ).rejects.toThrow("layer x is over 100000 bytes");
    expect(sent).toBe(2);
    expect(cancelled).toBe(true);
  });

  it("gives up on a body that stalls between chunks", async () => {
    let cancelled = false;
    async function* stalls() {
      yield new Uint8Array(1);
      await new Promise(() => {}); // a registry that stops sending, connection open
    }
    const started = Date.now();
    await expect(drain(boundedChunks(stalls(), { max: 10, idleMs: 100, what: "layer x", cancel: () => (cancelled = true) }))).rejects.toThrow(
      "layer x stalled: nothing came for 0 s",
    );
    expect(Date.now() - started).toBeLessThan(1000);
    expect(cancelled).toBe(true);
  });

  it("refuses a body whose content-length is over the cap without reading it", async () => {
    const res = new Response("x".repeat(100), { headers: { "content-length": "100" } });
    await expect(readCapped(res, { max: 10, idleMs: 1000, what: "manifest m" })).rejects.toThrow("manifest m is over 10 bytes (content-length 100)");
    const chunked = new Response(new Blob(["y".repeat(100)]).stream());
    await expect(readCapped(chunked, { max: 10, idleMs: 1000, what: "token" })).rejects.toThrow("token is over 10 bytes");
    expect((await readCapped(new Response("{}"), { max: 10, idleMs: 1000, what: "token" })).toString()).toBe("{}");
  });
});
