import { expect, test } from "vitest";
import { refersTo } from "../src/routes/images.ts";

const web = { name: "docker.io/library/web:1", digest: "sha256:aaaa" };

test("a reference names an image by Docker Hub's defaults, its tag, or the digest it is pinned to", () => {
  for (const ref of ["web:1", "library/web:1", "docker.io/library/web:1", "index.docker.io/library/web:1", "web@sha256:aaaa", "web:1@sha256:aaaa"]) {
    expect(refersTo(ref, web), ref).toBe(true);
  }
  for (const ref of ["web", "web:2", "other/web:1", "registry.local/web:1", "web@sha256:bbbb"]) expect(refersTo(ref, web), ref).toBe(false);
  expect(refersTo("web", { name: "docker.io/library/web:latest", digest: "x" })).toBe(true);
  expect(refersTo("registry.local:5000/team/api:2", { name: "registry.local:5000/team/api:2", digest: "x" })).toBe(true);
});
