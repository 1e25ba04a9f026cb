// A small ustar writer and streaming reader: enough for image archives
// (docker-archive, OCI layout) and their layers. The reader follows PAX and
// GNU long names; bodies are handed out in chunks so big layers never sit in memory.

import type { Readable } from "node:stream";

const BLOCK = 512;
// PAX and GNU long-name/link headers are read whole: real ones are a few hundred bytes
export const MAX_META = 1 << 20;
const META_KIND: Record<string, string> = { x: "PAX", g: "PAX global", L: "GNU long-name", K: "GNU long-link" };

export type TarEntryType = "file" | "dir" | "symlink" | "hardlink" | "other";

export interface TarFile {
  path: string;
  mode: number;
  content?: Buffer;
  symlink?: string;
  dir?: boolean;
  mtime?: number;
}

// ---- writer ----

function octal(value: number, width: number): string {
  return `${value.toString(8).padStart(width - 1, "0")}\0`;
}

function header(path: string, size: number, mode: number, typeflag: string, linkname: string, mtime: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  let name = path;
  let prefix = "";
  if (Buffer.byteLength(name) > 100) {
    const cut = path.lastIndexOf("/");
    prefix = path.slice(0, cut);
    name = path.slice(cut + 1);
    if (cut < 0 || Buffer.byteLength(name) > 100 || Buffer.byteLength(prefix) > 155) throw new Error(`tar: path too long: ${path}`);
  }
  if (Buffer.byteLength(linkname) > 100) throw new Error(`tar: link target too long: ${linkname}`);
  h.write(name, 0, 100);
  h.write(octal(mode & 0o7777, 8), 100);
  h.write(octal(0, 8), 108); // uid
  h.write(octal(0, 8), 116); // gid
  h.write(octal(size, 12), 124);
  h.write(octal(mtime, 12), 136);
  h.write("        ", 148); // checksum placeholder
  h.write(typeflag, 156);
  h.write(linkname, 157, 100);
  h.write("ustar\u000000", 257);
  h.write(prefix, 345, 155);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return h;
}

function pad(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** A tar archive of these entries, in order (directories are not implied: list them). */
export function writeTar(files: TarFile[]): Buffer {
  const parts: Buffer[] = [];
  for (const f of files) {
    const path = f.path.replace(/^\/+/, "");
    const mtime = f.mtime ?? 0;
    if (f.dir) {
      parts.push(header(path.endsWith("/") ? path : `${path}/`, 0, f.mode, "5", "", mtime));
    } else if (f.symlink !== undefined) {
      parts.push(header(path, 0, f.mode, "2", f.symlink, mtime));
    } else {
      const body = f.content ?? Buffer.alloc(0);
      parts.push(header(path, body.length, f.mode, "0", "", mtime), body, pad(body.length));
    }
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

// ---- reader ----

export interface TarEntry {
  path: string;
  type: TarEntryType;
  size: number;
  mode: number;
  linkname: string;
}

/** Reads a byte stream in exact-sized pieces. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private done = false;
  private readonly it: AsyncIterator<Buffer>;

  constructor(stream: AsyncIterable<Buffer | string>) {
    this.it = (async function* () {
      for await (const c of stream) yield typeof c === "string" ? Buffer.from(c) : c;
    })();
  }

  private async fill(): Promise<boolean> {
    if (this.done) return false;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return false;
    }
    this.chunks.push(r.value);
    this.buffered += r.value.length;
    return true;
  }

  /** Exactly n bytes, or fewer only at the end of the stream (copies only when n spans chunks). */
  async read(n: number): Promise<Buffer> {
    while (this.buffered < n && (await this.fill()));
    const first = this.chunks[0];
    if (first && first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const parts: Buffer[] = [];
    let left = Math.min(n, this.buffered);
    while (left > 0) {
      const head = this.chunks.shift() as Buffer;
      const take = Math.min(left, head.length);
      parts.push(head.subarray(0, take));
      if (take < head.length) this.chunks.unshift(head.subarray(take));
      this.buffered -= take;
      left -= take;
    }
    return Buffer.concat(parts);
  }

  /** Hands n bytes to `sink` chunk by chunk, as they arrive. */
  async pipe(n: number, sink: (chunk: Buffer) => Promise<void> | void): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.fill())) throw new Error("tar: archive ends inside an entry");
      const head = this.chunks.shift() as Buffer;
      this.buffered -= head.length;
      const take = Math.min(left, head.length);
      if (take < head.length) {
        this.chunks.unshift(head.subarray(take));
        this.buffered += head.length - take;
      }
      left -= take;
      await sink(head.subarray(0, take));
    }
  }
}

function cstr(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end < 0 ? b.length : end).toString("utf8");
}

function num(b: Buffer): number {
  if (b[0] !== undefined && b[0] & 0x80) {
    // GNU base-256 for big sizes
    let v = 0;
    for (let i = 1; i < b.length; i++) v = v * 256 + (b[i] as number);
    return v;
  }
  const s = cstr(b).trim();
  return s ? Number.parseInt(s, 8) : 0;
}

function parsePax(body: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let at = 0;
  while (at < body.length) {
    const sp = body.indexOf(0x20, at);
    if (sp < 0) break;
    const len = Number.parseInt(body.subarray(at, sp).toString(), 10);
    if (!(len > 0)) break;
    const rec = body.subarray(sp + 1, at + len - 1).toString("utf8");
    const eq = rec.indexOf("=");
    if (eq > 0) out[rec.slice(0, eq)] = rec.slice(eq + 1);
    at += len;
  }
  return out;
}

function typeOf(flag: string): TarEntryType {
  if (flag === "0" || flag === "\0" || flag === "" || flag === "7") return "file";
  if (flag === "5") return "dir";
  if (flag === "2") return "symlink";
  if (flag === "1") return "hardlink";
  return "other";
}

/**
 * Calls `onEntry` for each entry of the tar stream; it must consume the body
 * through `body(sink)` or the body is skipped. Throws on a malformed archive.
 */
export async function readTar(
  stream: Readable | AsyncIterable<Buffer>,
  onEntry: (entry: TarEntry, body: (sink: (chunk: Buffer) => Promise<void> | void) => Promise<void>) => Promise<void>,
): Promise<void> {
  const r = new ByteReader(stream as AsyncIterable<Buffer>);
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax: Record<string, string> = {};
  let seen = 0;
  for (;;) {
    const h = await r.read(BLOCK);
    if (h.length === 0 && seen === 0) throw new Error("tar: the archive is empty");
    if (h.length < BLOCK) throw new Error("tar: the archive is truncated");
    if (h.every((b) => b === 0)) return;
    seen++;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (h[i] as number);
    if (sum !== num(h.subarray(148, 156))) throw new Error("tar: bad header checksum (is this a tar archive?)");
    const flag = String.fromCharCode(h[156] as number);
    const size = num(h.subarray(124, 136));
    const padded = size + ((BLOCK - (size % BLOCK)) % BLOCK);
    if (flag === "x" || flag === "g" || flag === "L" || flag === "K") {
      if (size > MAX_META) throw new Error(`tar: a ${META_KIND[flag]} header of ${size} bytes is over the ${MAX_META >> 10} KiB limit (is this a tar archive?)`);
      const body = (await r.read(padded)).subarray(0, size);
      if (flag === "x") pax = parsePax(body);
      if (flag === "L") longName = cstr(body);
      if (flag === "K") longLink = cstr(body);
      continue;
    }
    const magic = h.subarray(257, 263).toString("latin1");
    const prefix = magic.startsWith("ustar") ? cstr(h.subarray(345, 500)) : "";
    const short = cstr(h.subarray(0, 100));
    const path = pax.path ?? longName ?? (prefix ? `${prefix}/${short}` : short);
    const entry: TarEntry = {
      path: path.replace(/^\.\//, ""),
      type: typeOf(flag),
      size: pax.size !== undefined ? Number(pax.size) : size,
      mode: num(h.subarray(100, 108)),
      linkname: pax.linkpath ?? longLink ?? cstr(h.subarray(157, 257)),
    };
    pax = {};
    longName = undefined;
    longLink = undefined;
    const bodySize = entry.type === "file" ? entry.size : size;
    let consumed = false;
    await onEntry(entry, async (sink) => {
      consumed = true;
      await r.pipe(bodySize, sink);
    });
    if (!consumed) await r.pipe(bodySize, () => {});
    const tail = (BLOCK - (bodySize % BLOCK)) % BLOCK;
    if (tail) await r.read(tail);
  }
}
