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
const MAX_ERROR_BODY = 4 << 10;
// A blob's body may pause this long between chunks before the pull gives up on it.
export const IDLE_TIMEOUT_MS = 30_000;
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

/**
 * The chunks of a body, refusing more than `max` bytes in all and a pause of
 * `idleMs` between two chunks; `cancel` is called (to abort the request) when
 * either bound is hit, and the error says which, naming `what`.
 */
export async function* boundedChunks(
  body: AsyncIterable<Uint8Array>,
  o: { max: number; idleMs: number; what: string; cancel?: () => void },
): AsyncGenerator<Buffer> {
  const it = body[Symbol.asyncIterator]();
  let total = 0;
  let timer: NodeJS.Timeout | undefined;
  const fail = (why: string): Error => {
    o.cancel?.();
    void it.return?.()?.catch?.(() => {});
    return new Error(`${o.what} ${why}`);
  };
  try {
    for (;;) {
      const idle = new Promise<"idle">((resolve) => {
        timer = setTimeout(() => resolve("idle"), o.idleMs);
      });
      const r = await Promise.race([it.next(), idle]);
      clearTimeout(timer);
      if (r === "idle") throw fail(`stalled: nothing came for ${Math.round(o.idleMs / 1000)} s`);
      if (r.done) return;
      total += r.value.length;
      if (total > o.max) throw fail(`is over ${o.max} bytes`);
      yield Buffer.from(r.value.buffer, r.value.byteOffset, r.value.length);
    }
  } finally {
    clearTimeout(timer);
  }
}

/** A whole body of at most `max` bytes (its content-length checked first), read with an idle bound. */
export async function readCapped(
  res: { headers: { get(name: string): string | null }; body: ReadableStream<Uint8Array> | null },
  o: { max: number; idleMs: number; what: string; cancel?: () => void },
): Promise<Buffer> {
  const length = Number(res.headers.get("content-length") ?? Number.NaN);
  if (length > o.max) {
    await res.body?.cancel().catch(() => {});
    throw new Error(`${o.what} is over ${o.max} bytes (content-length ${length})`);
  }
  if (!res.body) return Buffer.alloc(0);
  const parts: Buffer[] = [];
  for await (const c of boundedChunks(res.body as unknown as AsyncIterable<Uint8Array>, o)) parts.push(c);
  return Buffer.concat(parts);
}

class Registry {
  private token: string | undefined;
  readonly base: string;
  readonly host: string;

  constructor(
    readonly name: string,
    domain: string,
    readonly path: string,
  ) {
    this.base = registryBaseUrl(domain);
    this.host = new URL(this.base).host;
  }

  private fail(why: string): Error {
    return new Error(`cannot pull ${this.name}: ${why}`);
  }

  /** A GET whose headers must come within REQUEST_TIMEOUT_MS; `signal` aborts it (and its body) too. */
  private async fetch(url: string, init: { accept?: string; signal?: AbortSignal } = {}): Promise<Response> {
    const headers: Record<string, string> = {};
    if (init.accept) headers.accept = init.accept;
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    const headersCame = new AbortController();
    const signal = init.signal ? AbortSignal.any([init.signal, headersCame.signal]) : headersCame.signal;
    const onTimeout = () => headersCame.abort(timeout.reason);
    timeout.addEventListener("abort", onTimeout, { once: true });
    try {
      return await fetch(url, { headers, signal, redirect: "follow" });
    } catch (err) {
      throw this.fail(networkReason(new URL(url).host, err));
    } finally {
      // the body is bounded by its reader (readCapped, boundedChunks), not by this timer
      timeout.removeEventListener("abort", onTimeout);
    }
  }

  /** GET with one round of anonymous bearer auth when the registry asks for it. */
  async get(what: string, url: string, init: { accept?: string; signal?: AbortSignal } = {}): Promise<Response> {
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
    const detail = (await readCapped(res, { max: MAX_ERROR_BODY, idleMs: REQUEST_TIMEOUT_MS, what: "error" }).catch(() => Buffer.alloc(0)))
      .toString("utf8")
      .slice(0, 300)
      .trim();
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
    if (!res.ok) {
      await res.body?.cancel().catch(() => {});
      throw this.fail(`the token service ${url.host} answered ${res.status}`);
    }
    const raw = await this.capped(res, MAX_JSON, `the token service ${url.host}'s answer`);
    const body = (safeJson(raw) ?? {}) as { token?: string; access_token?: string };
    const token = typeof body.token === "string" ? body.token : body.access_token;
    if (!token) throw this.fail(`the token service ${url.host} gave no token`);
    return token;
  }

  /** A JSON body, at most `max` bytes; the error names the pull. */
  private async capped(res: Response, max: number, what: string): Promise<Buffer> {
    try {
      return await readCapped(res, { max, idleMs: REQUEST_TIMEOUT_MS, what });
    } catch (err) {
      throw this.fail((err as Error).message);
    }
  }

  async json(what: string, kind: "manifests" | "blobs", ref: string, expectedDigest?: string): Promise<{ body: Buffer; mediaType: string }> {
    const res = await this.get(what, `${this.base}/v2/${this.path}/${kind}/${ref}`, { accept: ACCEPT });
    const body = await this.capped(res, MAX_JSON, what);
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
  o: { idleMs?: number } = {},
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
      }, o.idleMs ?? IDLE_TIMEOUT_MS);
    }
    report(true);
    layers.push({ desc: layer, entry: { digest: layer.digest, size: Number(layer.size), head: Buffer.alloc(0) } });
  }
  return { manifest: desc, manifestJson: top.body, config: manifest.config, configJson: config.body, layers };
}

/** Streams a layer into the content store: no more than its descriptor's size, no pause over the idle timeout. */
async function fetchBlob(reg: Registry, rpc: Rpc, lease: string, layer: Descriptor, progress: (n: number) => void, idleMs: number): Promise<void> {
  const what = `layer ${layer.digest}`;
  const abort = new AbortController();
  const res = await reg.get(what, `${reg.base}/v2/${reg.path}/blobs/${layer.digest}`, { signal: abort.signal });
  const max = Number(layer.size);
  const length = Number(res.headers.get("content-length") ?? Number.NaN);
  if (length > max) {
    abort.abort();
    throw new Error(`cannot pull ${reg.name}: ${what} is over ${max} bytes (content-length ${length})`);
  }
  const w = new BlobWriter(rpc, lease);
  try {
    if (!res.body) throw new Error(`${what}: empty response`);
    const chunks = boundedChunks(res.body as unknown as AsyncIterable<Uint8Array>, { max, idleMs, what, cancel: () => abort.abort() });
    for await (const chunk of chunks) {
      await w.write(chunk);
      progress(chunk.length);
    }
    const r = await w.commit({ expected: layer.digest });
    if (r.exists) await new ContentStore(rpc).adopt(layer.digest, lease);
  } catch (err) {
    await w.abort();
    abort.abort();
    const message = (err as Error).message;
    throw message.startsWith("cannot pull") ? err : new Error(`cannot pull ${reg.name}: ${message}`);
  }
}
