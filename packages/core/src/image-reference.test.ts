import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { matchRank, normalizeImageRef, parseImageRef, refersTo, resolveImage } from "./image-reference.ts";

describe("normalizeImageRef", () => {
  it.each([
    ["nginx", "docker.io/library/nginx:latest"],
    ["nginx:1.25", "docker.io/library/nginx:1.25"],
    ["library/nginx", "docker.io/library/nginx:latest"],
    ["vipmesh/whoami:2", "docker.io/vipmesh/whoami:2"],
    ["index.docker.io/foo/bar", "docker.io/foo/bar:latest"],
    ["docker.io/nginx", "docker.io/library/nginx:latest"],
    ["localhost/app", "localhost/app:latest"],
    ["localhost:5000/app:v1", "localhost:5000/app:v1"],
    ["registry.local:5000/team/app", "registry.local:5000/team/app:latest"],
    ["ghcr.io/a/b/c:x.y-z_1", "ghcr.io/a/b/c:x.y-z_1"],
    [`nginx@sha256:${"a".repeat(64)}`, `docker.io/library/nginx@sha256:${"a".repeat(64)}`],
    [`nginx:1@sha256:${"b".repeat(64)}`, `docker.io/library/nginx:1@sha256:${"b".repeat(64)}`],
    ["my-app__x.y", "docker.io/library/my-app__x.y:latest"],
  ])("%s → %s", (ref, want) => {
    expect(normalizeImageRef(ref)).toBe(want);
  });

  it.each([
    ["", "it is empty"],
    [" nginx", "surrounding spaces"],
    ["Nginx", "must be lowercase"],
    ["nginx:", "is not a valid tag"],
    ["nginx:-x", "is not a valid tag"],
    ["nginx@sha256:xyz", "is not a digest"],
    ["a//b", "is not a valid name component"],
    ["-a/b", "is not a valid name component"],
    ["a/b_", "is not a valid name component"],
    ["host:80/", "names no repository"],
    [`x/${"a".repeat(260)}`, "longer than 255"],
  ])("refuses %j: %s", (ref, why) => {
    expect(() => normalizeImageRef(ref)).toThrow(why);
  });

  it("keeps the parts apart", () => {
    expect(parseImageRef("registry.local:5000/team/app:v2")).toEqual({ domain: "registry.local:5000", path: "team/app", tag: "v2" });
  });
});

describe("which image a reference names", () => {
  const d1 = `sha256:${"1".repeat(64)}`;
  const d2 = `sha256:${"2".repeat(64)}`;
  const web1 = { name: "docker.io/library/web:1", digest: d1 };
  const web2 = { name: "docker.io/library/web:2", digest: d2 };
  const other = { name: "registry.local/mirror/web:x", digest: d1 };
  const pinned = { name: `docker.io/library/web:1@${d1}`, digest: d1 };

  it("a reference without a digest names the exact name only", () => {
    expect(refersTo(web1, "web:1")).toBe(true);
    expect(refersTo(web1, "web")).toBe(false);
    expect(refersTo(other, "web:1")).toBe(false);
  });

  it("a digest-pinned reference names the image whose target is that digest", () => {
    // `docker service create web:1` stores web:1@sha256:…; the loaded image is named web:1
    expect(refersTo(web1, `web:1@${d1}`)).toBe(true);
    expect(refersTo(web1, `web:1@${d2}`)).toBe(false);
    expect(refersTo(web2, `web:1@${d2}`)).toBe(true); // same repository, that content
    expect(refersTo(other, `web@${d1}`)).toBe(true);
  });

  it("resolveImage takes the closest: exact name, name without digest, same repository, any", () => {
    expect(resolveImage([other, web1, pinned], `web:1@${d1}`)).toBe(pinned);
    expect(resolveImage([other, web1], `web:1@${d1}`)).toBe(web1);
    expect(resolveImage([other, { ...web2, digest: d1 }], `web:1@${d1}`)?.name).toBe("docker.io/library/web:2");
    expect(resolveImage([other], `web:1@${d1}`)).toBe(other);
    expect(resolveImage([web2, other], `web:1@${sha256Of("none")}`)).toBeUndefined();
    expect(matchRank(web1, "web:1")).toBe(4);
  });
});

function sha256Of(s: string): string {
  return `sha256:${createHash("sha256").update(s).digest("hex")}`;
}
