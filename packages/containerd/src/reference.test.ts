import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { MEDIA, chainIds, layerMediaType, selectManifest } from "./reference.ts";

describe("selectManifest", () => {
  const m = (os: string, architecture: string, variant?: string) => ({
    mediaType: MEDIA.ociManifest,
    digest: `sha256:${os}${architecture}${variant ?? ""}`,
    size: 1,
    platform: { os, architecture, ...(variant ? { variant } : {}) },
  });

  it("takes linux/amd64 from a list", () => {
    expect(selectManifest({ manifests: [m("linux", "arm64", "v8"), m("linux", "amd64"), m("windows", "amd64")] }, "x").digest).toBe(
      "sha256:linuxamd64",
    );
  });

  it("takes the single image of an index without platforms, not its attestation", () => {
    const attestation = { mediaType: MEDIA.ociManifest, digest: "sha256:att", size: 1, annotations: { "vnd.docker.reference.type": "attestation-manifest" } };
    expect(selectManifest({ manifests: [{ mediaType: MEDIA.ociManifest, digest: "sha256:one", size: 1 }, attestation] }, "x").digest).toBe("sha256:one");
  });

  it("names the platforms it has when linux/amd64 is not one", () => {
    expect(() => selectManifest({ manifests: [m("linux", "arm64", "v8"), m("linux", "arm", "v7")] }, "image y")).toThrow(
      "image y has no linux/amd64 image (it has linux/arm64/v8, linux/arm/v7)",
    );
    expect(() => selectManifest({ manifests: [] }, "image z")).toThrow("image z has no linux/amd64 image");
  });
});

describe("chainIds", () => {
  const hash = (s: string) => `sha256:${createHash("sha256").update(s).digest("hex")}`;
  it("is the first diff ID, then the hash of parent and diff ID", () => {
    expect(chainIds(["sha256:a", "sha256:b"], hash)).toEqual(["sha256:a", hash("sha256:a sha256:b")]);
    expect(chainIds([], hash)).toEqual([]);
  });
});

describe("layerMediaType", () => {
  it("tells gzip from tar by its magic", () => {
    expect(layerMediaType(Buffer.from([0x1f, 0x8b, 8]), true)).toBe(MEDIA.ociLayerGzip);
    expect(layerMediaType(Buffer.from("bin/"), false)).toBe(MEDIA.dockerLayer);
  });
});
