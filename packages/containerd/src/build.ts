// Image tarballs made here, from a list of files (no registry is reachable
// where vipmesh's tests and lab run): one layer, as a docker-archive (`docker
// save`) or an OCI image layout. Free of gRPC, for the lab and tests.

import { createHash } from "node:crypto";
import { MEDIA, normalizeImageRef } from "./reference.ts";
import { type TarFile, writeTar } from "./tar.ts";
import type { ImageConfig } from "./types.ts";

/** The annotations that name an image in an OCI layout's index (OCI's, and containerd's own). */
export const REF_NAME = "org.opencontainers.image.ref.name";
export const CONTAINERD_NAME = "io.containerd.image.name";

const sha256 = (b: Buffer): string => `sha256:${createHash("sha256").update(b).digest("hex")}`;

export interface ImageFile {
  path: string;
  mode: number;
  content?: Buffer;
  symlink?: string;
  dir?: boolean;
}

/** The image config JSON (https://github.com/opencontainers/image-spec/blob/main/config.md) for one layer. */
function imageConfigJson(config: Partial<ImageConfig>, diffId: string): Buffer {
  const c: Record<string, unknown> = {};
  if (config.entrypoint) c.Entrypoint = config.entrypoint;
  if (config.cmd) c.Cmd = config.cmd;
  if (config.env) c.Env = config.env;
  if (config.workingDir) c.WorkingDir = config.workingDir;
  if (config.user) c.User = config.user;
  if (config.labels) c.Labels = config.labels;
  if (config.stopSignal) c.StopSignal = config.stopSignal;
  return Buffer.from(
    JSON.stringify({
      architecture: "amd64",
      os: "linux",
      created: "1970-01-01T00:00:00Z",
      config: c,
      rootfs: { type: "layers", diff_ids: [diffId] },
      history: [{ created: "1970-01-01T00:00:00Z", created_by: "vipmesh buildImageArchive" }],
    }),
  );
}

function hex(digest: string): string {
  return digest.slice("sha256:".length);
}

/** A docker-archive (docker save) or OCI image-layout tarball of one image with one uncompressed layer. */
export function buildImageArchive(o: {
  name: string;
  format: "docker-archive" | "oci";
  files: ImageFile[];
  config: Partial<ImageConfig>;
}): Buffer {
  const normalized = normalizeImageRef(o.name);
  const layer = writeTar(o.files as TarFile[]);
  const layerDigest = sha256(layer);
  const config = imageConfigJson(o.config, layerDigest);
  const configDigest = sha256(config);
  if (o.format === "docker-archive") {
    const manifest = [{ Config: `${hex(configDigest)}.json`, RepoTags: [o.name], Layers: [`${hex(layerDigest)}/layer.tar`] }];
    return writeTar([
      { path: `${hex(layerDigest)}`, mode: 0o755, dir: true },
      { path: `${hex(layerDigest)}/layer.tar`, mode: 0o644, content: layer },
      { path: `${hex(configDigest)}.json`, mode: 0o644, content: config },
      { path: "manifest.json", mode: 0o644, content: Buffer.from(JSON.stringify(manifest)) },
    ]);
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: configDigest, size: config.length },
      layers: [{ mediaType: MEDIA.ociLayer, digest: layerDigest, size: layer.length }],
    }),
  );
  const manifestDigest = sha256(manifest);
  const index = {
    schemaVersion: 2,
    mediaType: MEDIA.ociIndex,
    manifests: [
      {
        mediaType: MEDIA.ociManifest,
        digest: manifestDigest,
        size: manifest.length,
        platform: { os: "linux", architecture: "amd64" },
        annotations: { [REF_NAME]: o.name, [CONTAINERD_NAME]: normalized },
      },
    ],
  };
  return writeTar([
    { path: "oci-layout", mode: 0o644, content: Buffer.from(JSON.stringify({ imageLayoutVersion: "1.0.0" })) },
    { path: "index.json", mode: 0o644, content: Buffer.from(JSON.stringify(index)) },
    { path: "blobs", mode: 0o755, dir: true },
    { path: "blobs/sha256", mode: 0o755, dir: true },
    { path: `blobs/sha256/${hex(configDigest)}`, mode: 0o644, content: config },
    { path: `blobs/sha256/${hex(layerDigest)}`, mode: 0o644, content: layer },
    { path: `blobs/sha256/${hex(manifestDigest)}`, mode: 0o644, content: manifest },
  ]);
}

// ---- reading an archive ----

