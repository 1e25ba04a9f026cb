import { describe, expect, it } from "vitest";
import { parseBearerChallenge, registryBaseUrl } from "./registry.ts";

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
