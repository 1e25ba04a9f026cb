// The pure choices of a pull: which manifest of an index to take, a layer's
// media type, chain IDs. Image references themselves are core's (image-reference.ts).

export { formatImageRef, type ImageReference, matchRank, type NamedImage, normalizeImageRef, parseImageRef, refersTo, resolveImage } from "@vipmesh/core";

export const MEDIA = {
  dockerManifest: "application/vnd.docker.distribution.manifest.v2+json",
  dockerList: "application/vnd.docker.distribution.manifest.list.v2+json",
  dockerConfig: "application/vnd.docker.container.image.v1+json",
  dockerLayer: "application/vnd.docker.image.rootfs.diff.tar",
  dockerLayerGzip: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  ociManifest: "application/vnd.oci.image.manifest.v1+json",
  ociIndex: "application/vnd.oci.image.index.v1+json",
  ociConfig: "application/vnd.oci.image.config.v1+json",
  ociLayer: "application/vnd.oci.image.layer.v1.tar",
  ociLayerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
} as const;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

export function isIndex(mediaType: string | undefined): boolean {
  return mediaType === MEDIA.dockerList || mediaType === MEDIA.ociIndex;
}

export function isManifest(mediaType: string | undefined): boolean {
  return mediaType === MEDIA.dockerManifest || mediaType === MEDIA.ociManifest;
}

export const PLATFORM = { os: "linux", architecture: "amd64" } as const;

/** The linux/amd64 manifest of an index; a clear error naming the platforms it has otherwise. */
export function selectManifest(index: { manifests?: Descriptor[] }, what: string): Descriptor {
  const manifests = index.manifests ?? [];
  const matches = manifests.filter((m) => m.platform?.os === PLATFORM.os && m.platform?.architecture === PLATFORM.architecture);
  const found = matches.find((m) => isManifest(m.mediaType) || isIndex(m.mediaType)) ?? matches[0];
  if (found) return found;
  // an index without platforms (some OCI layouts) with a single image: that is the one
  const plain = manifests.filter((m) => !m.platform && !isAttestation(m));
  if (plain.length === 1 && plain[0]) return plain[0];
  const has = manifests
    .filter((m) => m.platform)
    .map((m) => `${m.platform?.os}/${m.platform?.architecture}${m.platform?.variant ? `/${m.platform.variant}` : ""}`);
  throw new Error(`${what} has no ${PLATFORM.os}/${PLATFORM.architecture} image${has.length ? ` (it has ${[...new Set(has)].join(", ")})` : ""}`);
}

function isAttestation(d: Descriptor): boolean {
  return d.annotations?.["vnd.docker.reference.type"] === "attestation-manifest";
}

/** The layer media type for a blob, by its first bytes: gzip or plain tar. */
export function layerMediaType(firstBytes: Buffer, oci: boolean): string {
  const gzip = firstBytes[0] === 0x1f && firstBytes[1] === 0x8b;
  if (oci) return gzip ? MEDIA.ociLayerGzip : MEDIA.ociLayer;
  return gzip ? MEDIA.dockerLayerGzip : MEDIA.dockerLayer;
}

/** The chain IDs of a layer stack, from its diff IDs: the snapshot names of an unpacked image. */
export function chainIds(diffIds: string[], hash: (s: string) => string): string[] {
  const out: string[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : hash(`${prev} ${d}`));
  }
  return out;
}
