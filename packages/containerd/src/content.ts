// containerd's content store: streaming blob writes (Write: WRITE… then
// COMMIT with the expected digest), reads, and GC labels.

import { createHash, randomUUID } from "node:crypto";
import { type Rpc, isCode, toContainerdError, writeMessage } from "./rpc.ts";

const CHUNK = 1 << 20;

interface WriteRequest {
  action: "STAT" | "WRITE" | "COMMIT";
  ref: string;
  total?: number;
  expected?: string;
  offset?: number;
  data?: Buffer;
  labels?: Record<string, string>;
}

export function sha256(data: Buffer): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** An open content write: feed chunks, then commit (the digest is computed on the way). */
export class BlobWriter {
  private readonly call;
  private readonly hash = createHash("sha256");
  private offset = 0;
  private failure: unknown;
  private readonly finished: Promise<void>;
  private readonly ref = `vipmesh-${randomUUID()}`;

  constructor(
    private readonly rpc: Rpc,
    lease: string | undefined,
  ) {
    this.call = rpc.duplex<WriteRequest, unknown>("content", "Content", "Write", { lease });
    this.call.on("data", () => {});
    this.finished = new Promise<void>((resolve, reject) => {
      this.call.on("error", (err) => {
        this.failure = err;
        reject(err);
      });
      this.call.on("end", () => resolve());
    });
    this.finished.catch(() => {}); // observed in commit()
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure) throw toContainerdError("content write", this.failure);
    for (let at = 0; at < chunk.length; at += CHUNK) {
      const data = chunk.subarray(at, at + CHUNK);
      this.hash.update(data);
      await writeMessage(this.call, { action: "WRITE", ref: this.ref, offset: this.offset, data });
      this.offset += data.length;
    }
  }

  /** Commits; "exists" when the store already had that blob. */
  async commit(o: { expected?: string; labels?: Record<string, string> } = {}): Promise<{ digest: string; size: number; exists: boolean }> {
    const digest = `sha256:${this.hash.digest("hex")}`;
    if (o.expected && o.expected !== digest) {
      await this.abort();
      throw new Error(`content does not match its digest: expected ${o.expected}, got ${digest}`);
    }
    try {
      await writeMessage(this.call, { action: "COMMIT", ref: this.ref, offset: this.offset, total: this.offset, expected: digest, labels: o.labels ?? {} });
      this.call.end();
      await this.finished;
      return { digest, size: this.offset, exists: false };
    } catch (err) {
      const e = toContainerdError("content commit", err);
      if (isCode(e, "already-exists")) return { digest, size: this.offset, exists: true };
      throw e;
    }
  }

  /** Drops the partial write (containerd keeps an ingest otherwise). */
  async abort(): Promise<void> {
    this.call.cancel();
    await this.rpc.unary("content", "Content", "Abort", { ref: this.ref }).catch(() => {});
  }
}

/** The content store of one containerd namespace. */
export class ContentStore {
  constructor(private readonly rpc: Rpc) {}

  /** Stores a blob held in memory; a no-op (but the labels) when it is already there. */
  async put(data: Buffer, o: { lease?: string; labels?: Record<string, string>; expected?: string } = {}): Promise<string> {
    const digest = sha256(data);
    if (o.expected && o.expected !== digest) throw new Error(`content does not match its digest: expected ${o.expected}, got ${digest}`);
    const w = new BlobWriter(this.rpc, o.lease);
    let r: Awaited<ReturnType<BlobWriter["commit"]>>;
    try {
      await w.write(data);
      r = await w.commit({ labels: o.labels });
    } catch (err) {
      await w.abort();
      throw err;
    }
    if (r.exists) await this.adopt(digest, o.lease, o.labels);
    return digest;
  }

  /** For a blob that was already there: hold it in the lease, set the labels. */
  async adopt(digest: string, lease: string | undefined, labels: Record<string, string> = {}): Promise<void> {
    if (lease) await this.rpc.unary("leases", "Leases", "AddResource", { id: lease, resource: { id: digest, type: "content" } });
    await this.label(digest, labels);
  }

  async label(digest: string, labels: Record<string, string>): Promise<void> {
    const keys = Object.keys(labels);
    if (keys.length === 0) return;
    await this.rpc.unary("content", "Content", "Update", {
      info: { digest, labels },
      updateMask: { paths: keys.map((k) => `labels.${k}`) },
    });
  }

  async has(digest: string): Promise<boolean> {
    try {
      await this.rpc.unary("content", "Content", "Info", { digest });
      return true;
    } catch (err) {
      if (isCode(err, "not-found")) return false;
      throw err;
    }
  }

  async read(digest: string): Promise<Buffer> {
    const parts = await this.rpc.collect<{ data: Buffer }>("content", "Content", "Read", { digest, offset: 0, size: 0 });
    return Buffer.concat(parts.map((p) => p.data));
  }

  async readJson<T>(digest: string): Promise<T> {
    return JSON.parse((await this.read(digest)).toString("utf8")) as T;
  }
}
