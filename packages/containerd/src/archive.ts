// Image archives: building docker-archive / OCI-layout tarballs from files
// (images made here, with no registry), and reading one back into a plan of
// blobs to import. Big entries stream straight into the content store.

import { posix } from "node:path";
import { createGunzip } from "node:zlib";
import { Readable, pipeline } from "node:stream";
import { BlobWriter, sha256 } from "./content.ts";
import { type Descriptor, MEDIA, isIndex, layerMediaType, normalizeImageRef, selectManifest } from "./reference.ts";
import type { Rpc } from "./rpc.ts";
import { CONTAINERD_NAME, REF_NAME } from "./build.ts";
import { readTar } from "./tar.ts";

// JSON candidates up to this size are kept in memory; layers are streamed into the content store.
const IN_MEMORY = 1 << 20;
// All entries kept in memory together (each counted at least ENTRY_COST): past it, they stream too.
const IN_MEMORY_TOTAL = 16 << 20;
const ENTRY_COST = 512;
// The paths an image archive's plan can name: its lists, configs, layers and OCI blobs.
const BLOB_PATH = /^blobs\/[a-z0-9]+\/[a-f0-9]+$/;
const LAYER_PATH = /(^|\/)layer\.tar$/;

/** Whether a path can matter to planArchive (others are skipped unread). */
function staged(path: string): boolean {
  return path.endsWith(".json") || BLOB_PATH.test(path) || LAYER_PATH.test(path);
}

/** Kept in memory: the JSON files and small OCI blobs (manifests, configs), under the total cap. */
function inMemory(path: string, size: number, held: number): boolean {
  if (size > IN_MEMORY || held + Math.max(size, ENTRY_COST) > IN_MEMORY_TOTAL) return false;
  return path.endsWith(".json") || BLOB_PATH.test(path);
}

export interface StagedEntry {
  digest: string;
  size: number;
  head: Buffer; // first bytes, to tell gzip from tar
  data?: Buffer; // small entries; big ones are already in the content store
}

/** One image found in an archive: its blobs, as descriptors plus where their bytes are. */
export interface ArchiveImage {
  names: string[];
  manifest: Descriptor;
  manifestJson: Buffer;
  config: Descriptor;
  configJson: Buffer;
  layers: { desc: Descriptor; entry: StagedEntry }[];
}

/** Reads a (possibly gzipped) tarball: small entries into memory, big ones into the content store under the lease. */
export async function stageArchive(tar: NodeJS.ReadableStream, rpc: Rpc, lease: string): Promise<Map<string, StagedEntry>> {
  const stream = await ungzipIfNeeded(tar as Readable);
  const entries = new Map<string, StagedEntry>();
  const links = new Map<string, string>();
  let held = 0;
  await readTar(stream, async (entry, body) => {
    const path = posix.normalize(entry.path);
    if (!staged(path)) return;
    if (entry.type === "symlink") links.set(path, posix.normalize(posix.join(posix.dirname(path), entry.linkname)));
    if (entry.type === "hardlink") links.set(path, posix.normalize(entry.linkname));
    if (entry.type !== "file") return;
    if (inMemory(path, entry.size, held)) {
      const parts: Buffer[] = [];
      await body((c) => void parts.push(Buffer.from(c)));
      const data = Buffer.concat(parts);
      held += Math.max(data.length, ENTRY_COST);
      entries.set(path, { digest: sha256(data), size: data.length, head: data.subarray(0, 4), data });
      return;
    }
    const w = new BlobWriter(rpc, lease);
    let head: Buffer | undefined;
    try {
      await body(async (c) => {
        head ??= Buffer.from(c.subarray(0, 4));
        await w.write(c);
      });
      const r = await w.commit();
      if (r.exists) await rpc.unary("leases", "Leases", "AddResource", { id: lease, resource: { id: r.digest, type: "content" } });
      entries.set(path, { digest: r.digest, size: r.size, head: head ?? Buffer.alloc(0) });
    } catch (err) {
      await w.abort();
      throw err;
    }
  });
  for (const [from, to] of links) {
    const target = entries.get(to);
    if (target) entries.set(from, target);
  }
  return entries;
}

async function ungzipIfNeeded(input: Readable): Promise<Readable> {
  const it = input[Symbol.asyncIterator]();
  const first = await it.next();
  const head: Buffer = first.done ? Buffer.alloc(0) : Buffer.from(first.value as Buffer);
  async function* rest() {
    if (head.length) yield head;
    for (;;) {
      const r = await it.next();
      if (r.done) return;
      yield r.value as Buffer;
    }
  }
  const joined = Readable.from(rest());
  if (head[0] !== 0x1f || head[1] !== 0x8b) return joined;
  // pipeline, not pipe: a source error (a cancelled load) reaches the reader, and a reader that stops frees the source
  const gunzip = createGunzip();
  pipeline(joined, gunzip, () => {});
  return gunzip;
}

function need(entries: Map<string, StagedEntry>, path: string, what: string): StagedEntry {
  const e = entries.get(posix.normalize(path));
  if (!e) throw new Error(`the archive has no ${path} (${what})`);
  return e;
}

/** The bytes of a JSON entry, which must have been kept in memory. */
function bytes(e: StagedEntry, what: string): Buffer {
  if (!e.data) throw new Error(`${what} is too big to be JSON (over ${IN_MEMORY >> 20} MiB, or the archive's JSON files over ${IN_MEMORY_TOTAL >> 20} MiB in all)`);
  return e.data;
}

function json<T>(e: StagedEntry, what: string): T {
  const data = bytes(e, what);
  try {
    return JSON.parse(data.toString("utf8")) as T;
  } catch (err) {
    throw new Error(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

interface OciManifest {
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  manifests?: Descriptor[];
}

/** The images of a staged archive: docker-archive (manifest.json) or OCI layout (index.json). */
export function planArchive(entries: Map<string, StagedEntry>): ArchiveImage[] {
  if (entries.has("manifest.json")) return planDockerArchive(entries);
  if (entries.has("index.json")) return planOciLayout(entries);
  throw new Error("not an image archive: it has neither manifest.json (docker save) nor index.json (OCI image layout)");
}

function planDockerArchive(entries: Map<string, StagedEntry>): ArchiveImage[] {
  const list = json<DockerManifestEntry[]>(need(entries, "manifest.json", "the image list"), "manifest.json");
  if (!Array.isArray(list) || list.length === 0) throw new Error("manifest.json lists no image");
  return list.map((m) => {
    const names = (m.RepoTags ?? []).map(normalizeImageRef);
    if (names.length === 0) throw new Error(`the archive's image ${m.Config} has no name (no RepoTags): tag it before saving`);
    const configEntry = need(entries, m.Config, "an image config");
    const config: Descriptor = { mediaType: MEDIA.dockerConfig, digest: configEntry.digest, size: configEntry.size };
    const layers = m.Layers.map((path) => {
      const entry = need(entries, path, "a layer");
      return { desc: { mediaType: layerMediaType(entry.head, false), digest: entry.digest, size: entry.size }, entry };
    });
    const manifestJson = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.dockerManifest, config, layers: layers.map((l) => l.desc) }),
    );
    const manifest = { mediaType: MEDIA.dockerManifest, digest: sha256(manifestJson), size: manifestJson.length };
    return { names, manifest, manifestJson, config, configJson: bytes(configEntry, m.Config), layers };
  });
}

function blob(entries: Map<string, StagedEntry>, d: Descriptor): StagedEntry {
  const [alg, h] = d.digest.split(":");
  const e = need(entries, `blobs/${alg}/${h}`, `blob ${d.digest}`);
  if (e.digest !== d.digest) throw new Error(`blob ${d.digest} in the archive is corrupt (its content hashes to ${e.digest})`);
  return e;
}

function planOciLayout(entries: Map<string, StagedEntry>): ArchiveImage[] {
  const index = json<{ manifests?: Descriptor[] }>(need(entries, "index.json", "the OCI index"), "index.json");
  const images: ArchiveImage[] = [];
  for (const top of index.manifests ?? []) {
    const name = top.annotations?.[CONTAINERD_NAME] ?? top.annotations?.[REF_NAME];
    if (!name) continue; // an unnamed image cannot be run by name
    let desc = top;
    for (let depth = 0; isIndex(desc.mediaType); depth++) {
      if (depth > 4) throw new Error(`index ${top.digest} nests too deep`);
      desc = selectManifest(json<OciManifest>(blob(entries, desc), `index ${desc.digest}`), `the archive's image ${name}`);
    }
    const manifestEntry = blob(entries, desc);
    const m = json<OciManifest>(manifestEntry, `manifest ${desc.digest}`);
    const configEntry = blob(entries, m.config);
    images.push({
      names: [normalizeImageRef(name)],
      manifest: { mediaType: desc.mediaType, digest: desc.digest, size: desc.size },
      manifestJson: bytes(manifestEntry, `manifest ${desc.digest}`),
      config: m.config,
      configJson: bytes(configEntry, `config ${m.config.digest}`),
      layers: m.layers.map((l) => ({ desc: l, entry: blob(entries, l) })),
    });
  }
  if (images.length === 0) throw new Error("index.json names no image (no org.opencontainers.image.ref.name annotation)");
  return images;
}
