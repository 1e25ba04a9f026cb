// Pulling from a registry (distribution API v2 over HTTPS): anonymous bearer
// tokens from the WWW-Authenticate challenge, an index resolved to its
// linux/amd64 manifest, blobs streamed into the content store with progress.
// Failures say why at once: bad name, no such tag, a host that does not resolve
// or cannot be reached.

import { BlobWriter, ContentStore, sha256 } from "./content.ts";
import type { IncomingImage } from "./client.ts";
import { type Descriptor, MEDIA, isIndex, isManifest, parseImageRef, selectManifest } from "./reference.ts";
import type { Rpc } from "./rpc.ts";

const DOCKER_HUB = "registry-1.docker.io";
const REQUEST_TIMEOUT_MS = 30_000;
const PROGRESS_STEP = 256 << 10;
const MAX_JSON = 4 << 20;
const ACCEPT = [MEDIA.ociIndex, MEDIA.dockerList, MEDIA.ociManifest, MEDIA.dockerManifest].join(", ");

/** The base URL of a reference's registry: Docker Hub's API host for docker.io; plain HTTP only for loopback. */
export function registryBaseUrl(domain: string): string {
  if (domain === "docker.io") return `https://${DOCKER_HUB}`;
  const host = domain.replace(/:\d+$/, "");
  const loopback = host === "localhost" || /^127\./.test(host);
  return `${loopback ? "http" : "https"}://${domain}`;
}

export interface BearerChallenge {
  realm: string;
  service?: string;
  scope?: string;
}

/** Parses `Bearer realm="…",service="…",scope="…"`; undefined for another scheme. */
export function parseBearerChallenge(header: string): BearerChallenge | undefined {
  const m = /^\s*Bearer\s+(.*)$/i.exec(header);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  for (const p of (m[1] as string).matchAll(/([a-zA-Z_]+)\s*=\s*(?:"([^"]*)"|([^,\s]*))/g)) {
    params[(p[1] as string).toLowerCase()] = p[2] ?? p[3] ?? "";
  }
  if (!params.realm) return undefined;
  return { realm: params.realm, ...(params.service ? { service: params.service } : {}), ...(params.scope ? { scope: params.scope } : {}) };
}

/** Why a fetch failed, in words a person can act on. */
function networkReason(host: string, err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } })?.cause;
  const code = cause?.code ?? (err as { code?: string })?.code;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN" || code === "EAI_NONAME" || code === "EAI_FAIL") return `${host} does not resolve (${code})`;
  if (code === "ENETUNREACH" || code === "EHOSTUNREACH") return `no route to ${host} (${code})`;
  if (code === "ECONNREFUSED") return `${host} refused the connection`;
  if ((err as Error)?.name === "TimeoutError" || code === "UND_ERR_CONNECT_TIMEOUT") return `${host} did not answer in time`;
  return `${host}: ${cause?.message ?? (err as Error)?.message ?? String(err)}`;
}

class Registry {
  private token: string | undefined;
  readonly base: string;
  readonly host: string;

  constructor(
    private readonly name: string,
    domain: string,
    readonly path: string,
  ) {
    this.base = registryBaseUrl(domain);
    this.host = new URL(this.base).host;
  }

  private fail(why: string): Error {
    return new Error(`cannot pull ${this.name}: ${why}`);
  }

  private async fetch(url: string, init: { accept?: string; timeout?: boolean } = {}): Promise<Response> {
    const headers: Record<string, string> = {};
    if (init.accept) headers.accept = init.accept;
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const signal = init.timeout === false ? undefined : AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    try {
      return await fetch(url, { headers, signal, redirect: "follow" });
    } catch (err) {
      throw this.fail(networkReason(new URL(url).host, err));
    }
  }

  /** GET with one round of anonymous bearer auth when the registry asks for it. */
  async get(what: string, url: string, init: { accept?: string; timeout?: boolean } = {}): Promise<Response> {
    let res = await this.fetch(url, init);
    if (res.status === 401 && !this.token) {
      const challenge = parseBearerChallenge(res.headers.get("www-authenticate") ?? "");
      if (challenge) {
        await res.body?.cancel();
        this.token = await this.authenticate(challenge);
        res = await this.fetch(url, init);
      }
    }
    if (res.ok) return res;
    const detail = (await res.text().catch(() => "")).slice(0, 300).trim();
    await res.body?.cancel().catch(() => {});
    if (res.status === 404) throw this.fail(`${what} not found (${this.host} answered 404)`);
    if (res.status === 401 || res.status === 403) {
      throw this.fail(`${what}: access denied by ${this.host} (${res.status}); the repository does not exist or is not public${detail ? `: ${detail}` : ""}`);
    }
    throw this.fail(`${what}: ${this.host} answered ${res.status} ${res.statusText}${detail ? `: ${detail}` : ""}`);
  }

  private async authenticate(c: BearerChallenge): Promise<string> {
    const url = new URL(c.realm);
    if (c.service) url.searchParams.set("service", c.service);
    url.searchParams.set("scope", c.scope ?? `repository:${this.path}:pull`);
    let res: Response;
    try {
      res = await fetch(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    } catch (err) {
      throw this.fail(`token: ${networkReason(url.host, err)}`);
    }
    if (!res.ok) throw this.fail(`the token service ${url.host} answered ${res.status}`);
    const body = (await res.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (!token) throw this.fail(`the token service ${url.host} gave no token`);
    return token;
  }

  async json(what: string, kind: "manifests" | "blobs", ref: string, expectedDigest?: string): Promise<{ body: Buffer; mediaType: string }> {
    const res = await this.get(what, `${this.base}/v2/${this.path}/${kind}/${ref}`, { accept: ACCEPT });
    const body = Buffer.from(await res.arrayBuffer());
    if (body.length > MAX_JSON) throw this.fail(`${what} is too big (${body.length} bytes)`);
    if (expectedDigest && sha256(body) !== expectedDigest) throw this.fail(`${what} does not match its digest ${expectedDigest}`);
    const parsed = safeJson(body) as { mediaType?: string } | undefined;
    if (!parsed) throw this.fail(`${what} is not JSON`);
    const mediaType = parsed.mediaType ?? res.headers.get("content-type")?.split(";")[0] ?? "";
    return { body, mediaType };
  }
}

function safeJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
}

/** Fetches an image's manifest, config and layers (into the content store under the lease). */
export async function pullImage(
  name: string,
  rpc: Rpc,
  lease: string,
  onProgress?: (p: { doneBytes: number; totalBytes: number }) => void,
): Promise<IncomingImage> {
  const ref = parseImageRef(name);
  const reg = new Registry(name, ref.domain, ref.path);
  const content = new ContentStore(rpc);
  let top = await reg.json(ref.digest ? `manifest ${ref.digest}` : `tag ${ref.tag}`, "manifests", ref.digest ?? (ref.tag as string), ref.digest);
  let desc: Descriptor = { mediaType: top.mediaType, digest: sha256(top.body), size: top.body.length };
  for (let depth = 0; isIndex(top.mediaType); depth++) {
    if (depth > 4) throw new Error(`cannot pull ${name}: its index nests too deep`);
    const chosen = selectManifest(JSON.parse(top.body.toString("utf8")), name);
    top = await reg.json(`manifest ${chosen.digest}`, "manifests", chosen.digest, chosen.digest);
    desc = { mediaType: chosen.mediaType || top.mediaType, digest: chosen.digest, size: top.body.length };
  }
  if (!isManifest(top.mediaType)) throw new Error(`cannot pull ${name}: its manifest type ${top.mediaType || "(none)"} is not supported (old schema 1?)`);
  const manifest = JSON.parse(top.body.toString("utf8")) as { config: Descriptor; layers: Descriptor[] };
  const config = await reg.json(`config ${manifest.config.digest}`, "blobs", manifest.config.digest, manifest.config.digest);

  const totalBytes = manifest.layers.reduce((n, l) => n + Number(l.size), 0);
  let doneBytes = 0;
  let reported = 0;
  const report = (force = false) => {
    if (force || doneBytes - reported >= PROGRESS_STEP) {
      reported = doneBytes;
      onProgress?.({ doneBytes, totalBytes });
    }
  };
  report(true);
  const layers: IncomingImage["layers"] = [];
  for (const layer of manifest.layers) {
    if (await content.has(layer.digest)) {
      await content.adopt(layer.digest, lease);
      doneBytes += Number(layer.size);
    } else {
      await fetchBlob(reg, rpc, lease, layer, (n) => {
        doneBytes += n;
        report();
      });
    }
    report(true);
    layers.push({ desc: layer, entry: { digest: layer.digest, size: Number(layer.size), head: Buffer.alloc(0) } });
  }
  return { manifest: desc, manifestJson: top.body, config: manifest.config, configJson: config.body, layers };
}

async function fetchBlob(reg: Registry, rpc: Rpc, lease: string, layer: Descriptor, progress: (n: number) => void): Promise<void> {
  const res = await reg.get(`layer ${layer.digest}`, `${reg.base}/v2/${reg.path}/blobs/${layer.digest}`, { timeout: false });
  const w = new BlobWriter(rpc, lease);
  try {
    if (!res.body) throw new Error(`layer ${layer.digest}: empty response`);
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      await w.write(Buffer.from(chunk));
      progress(chunk.length);
    }
    const r = await w.commit({ expected: layer.digest });
    if (r.exists) await new ContentStore(rpc).adopt(layer.digest, lease);
  } catch (err) {
    await w.abort();
    throw err;
  }
}
