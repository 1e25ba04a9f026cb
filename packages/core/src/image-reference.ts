// Image references, Docker's grammar ([domain/]path[:tag][@digest]) with its
// defaults, and which image a reference names: one rule for the agent (the
// container runtime, the image GC), containerd's client and the Engine API. Pure.

import { invalid as invalidArgument } from "./errors.ts";

const DEFAULT_DOMAIN = "docker.io";
const LEGACY_DOMAIN = "index.docker.io";
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$/;
const MAX_NAME = 255;

export interface ImageReference {
  domain: string; // "docker.io", "registry.local:5000"
  path: string; // "library/nginx"
  tag?: string;
  digest?: string;
}

function invalid(ref: string, why: string): Error {
  return invalidArgument(`invalid image reference "${ref}": ${why}`);
}

/** Parses a reference, filling Docker's defaults (docker.io, library/, :latest when there is no digest). */
export function parseImageRef(ref: string): ImageReference {
  if (ref.trim() === "") throw invalid(ref, "it is empty");
  if (ref !== ref.trim()) throw invalid(ref, "it has surrounding spaces");
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw invalid(ref, `"${digest}" is not a digest (algorithm:hex)`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(ref, `"${tag}" is not a valid tag (letters, digits, _ . -, at most 128)`);
  }
  let domain = DEFAULT_DOMAIN;
  let path = rest;
  const slash = rest.indexOf("/");
  const first = slash >= 0 ? rest.slice(0, slash) : "";
  if (slash >= 0 && (first.includes(".") || first.includes(":") || first === "localhost")) {
    domain = first;
    path = rest.slice(slash + 1);
    if (!DOMAIN.test(domain)) throw invalid(ref, `"${domain}" is not a valid registry host`);
  }
  if (domain === LEGACY_DOMAIN) domain = DEFAULT_DOMAIN;
  if (path === "") throw invalid(ref, "it names no repository");
  if (path !== path.toLowerCase()) throw invalid(ref, "repository names must be lowercase");
  for (const c of path.split("/")) {
    if (!COMPONENT.test(c)) throw invalid(ref, `"${c}" is not a valid name component (lowercase letters, digits, and . _ - between them)`);
  }
  if (domain === DEFAULT_DOMAIN && !path.includes("/")) path = `library/${path}`;
  if (`${domain}/${path}`.length > MAX_NAME) throw invalid(ref, `the repository name is longer than ${MAX_NAME} characters`);
  if (tag === undefined && digest === undefined) tag = "latest";
  return { domain, path, ...(tag !== undefined ? { tag } : {}), ...(digest !== undefined ? { digest } : {}) };
}

export function formatImageRef(r: Omit<ImageReference, "digest"> & { digest?: string | undefined }): string {
  return `${r.domain}/${r.path}${r.tag !== undefined ? `:${r.tag}` : ""}${r.digest !== undefined ? `@${r.digest}` : ""}`;
}

/** "nginx" → "docker.io/library/nginx:latest"; throws a clear Error for an invalid reference. */
export function normalizeImageRef(ref: string): string {
  return formatImageRef(parseImageRef(ref));
}

// ---- manifests ----

// ---- which image a reference names ----

/** The fields of an image record a reference is matched against. */
export interface NamedImage {
  name: string; // normalized
  digest: string; // its target (manifest or index) digest
}

/**
 * How closely `ref` names `image` (0: not at all). Without a digest only the
 * exact name does. With one: the exact name (4), else the name without the
 * digest (3) or the same repository (2) whose target is that digest, else any
 * image whose target is that digest (1): content, not names, decides.
 */
export function matchRank(image: NamedImage, ref: string): number {
  const want = parseImageRef(ref);
  const name = formatImageRef(want);
  if (image.name === name) return 4;
  if (want.digest === undefined || image.digest !== want.digest) return 0;
  if (image.name === formatImageRef({ ...want, digest: undefined })) return 3;
  const have = parseImageRef(image.name);
  return have.domain === want.domain && have.path === want.path ? 2 : 1;
}

/** Whether `ref` (as a client gave it: "web:1", "web:1@sha256:…") names this image. Throws on an invalid reference. */
export function refersTo(image: NamedImage, ref: string): boolean {
  return matchRank(image, ref) > 0;
}

/** The image `ref` names among these: the closest match (see matchRank), undefined when none. */
export function resolveImage<T extends NamedImage>(images: T[], ref: string): T | undefined {
  let best: T | undefined;
  let bestRank = 0;
  for (const image of images) {
    const rank = matchRank(image, ref);
    if (rank > bestRank) [best, bestRank] = [image, rank];
  }
  return best;
}
