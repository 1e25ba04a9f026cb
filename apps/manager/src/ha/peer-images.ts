// Images with several managers: an agent answers image requests over its
// session, which any manager may hold. A node whose session is here is asked
// directly (the dispatcher's ImageRelay); one held by another manager through
// that manager's ListImages, RemoveImage (one round: this manager runs both,
// across every manager) and LoadImage, restricted to its own sessions
// (local_only), with this manager's certificate. A load streams to each holder
// as it comes, the caller paused while any holder's stream is not draining, as
// while a node's window here is full.

import type * as grpc from "@grpc/grpc-js";
import { call, type wire } from "@vipmesh/api";
import type { ErrorCode } from "@vipmesh/core";
import { EventEmitter } from "node:events";
import { type ImageAnswer, type ImageQuestion, type ImageRelay, LOAD_WINDOW_BYTES, type NodeImageLoad, type NodeImages } from "../image-relay.ts";
import type { ManagerInfo } from "./directory.ts";
import type { SessionHolders } from "./session-holders.ts";

/** A node's part of an answer from another manager, as the relay's own answers are. */
const answerOf = (n: wire.NodeImageResult | undefined): ImageAnswer =>
  n ? { names: n.images, ...(n.error ? { error: n.error, ...(n.code ? { code: n.code as ErrorCode } : {}) } : {}) } : { error: "its manager did not say", code: "unavailable" };

export class PeerImageRelay implements NodeImages {
  constructor(
    private readonly local: ImageRelay,
    private readonly holders: SessionHolders,
  ) {}

  notConnected(nodeId: string): ImageAnswer {
    return this.local.notConnected(nodeId);
  }

  async ask(nodeId: string, q: ImageQuestion): Promise<ImageAnswer> {
    let holder: ManagerInfo | undefined;
    try {
      holder = await this.holders.elsewhere(nodeId);
    } catch (err) {
      return { error: `node ${this.local.hostname(nodeId)}: ${(err as Error).message}`, code: "unavailable" };
    }
    if (!holder) return this.local.ask(nodeId, q); // here, or no session anywhere: says so
    const client = this.holders.client(holder);
    try {
      if (q.op === "list") {
        const [n] = (await call(client, "listImages", { nodes: [nodeId], localOnly: true })).nodes;
        return n ? { images: n.images, ...(n.error ? { error: n.error } : {}) } : answerOf(undefined);
      }
      const req = { image: q.image ?? "", nodes: [nodeId], force: q.force ?? false, check: q.check ?? false, localOnly: true };
      return answerOf((await call(client, "removeImage", req)).nodes[0]);
    } catch (err) {
      return { error: this.holders.failed(holder, err as grpc.ServiceError), code: "unavailable" };
    } finally {
      client.close();
    }
  }

  /** The nodes held here (or nowhere) load through this manager's relay; each holder's through a LoadImage of its own. */
  async load(nodeIds: readonly string[]): Promise<NodeImageLoad> {
    const here: string[] = [];
    const byHolder = new Map<string, { holder: ManagerInfo; nodeIds: string[] }>();
    const unknown = new Map<string, ImageAnswer>();
    await Promise.all(
      nodeIds.map(async (nodeId) => {
        try {
          const holder = await this.holders.elsewhere(nodeId);
          if (!holder) here.push(nodeId);
          else {
            const group = byHolder.get(holder.id) ?? { holder, nodeIds: [] };
            byHolder.set(holder.id, group);
            group.nodeIds.push(nodeId);
          }
        } catch (err) {
          unknown.set(nodeId, { error: `node ${this.local.hostname(nodeId)}: ${(err as Error).message}`, code: "unavailable" });
        }
      }),
    );
    const holders = [...byHolder.values()].map((g) => new HolderLoad(this.holders, g.holder, g.nodeIds));
    return new PeerImageLoad(this.local.load(here), holders, unknown);
  }
}

/**
 * A load's part on another manager: its nodes' pieces streamed there as they
 * come (LoadImage, local_only). Not draining while the stream says so, or while
 * LOAD_WINDOW_BYTES written are not yet on their way (grpc counts pieces, not bytes).
 */
class HolderLoad extends EventEmitter<{ drain: [] }> implements NodeImageLoad {
  private readonly stream: grpc.ClientWritableStream<wire.LoadImageChunk>;
  private readonly answers: Promise<Map<string, ImageAnswer>>;
  private first = true;
  /** Bytes written that grpc has not yet handed to the connection. */
  private queued = 0;
  /** The holder answered (or the call failed): nothing more goes. */
  private done = false;

  constructor(
    holders: SessionHolders,
    holder: ManagerInfo,
    private readonly nodeIds: readonly string[],
  ) {
    super();
    const client = holders.client(holder);
    let stream!: grpc.ClientWritableStream<wire.LoadImageChunk>;
    this.answers = new Promise((resolve) => {
      stream = client.loadImage((err, res) => {
        client.close();
        this.done = true;
        const failed: ImageAnswer | undefined = !err
          ? undefined
          : err.code === 1 /* CANCELLED: ours */
            ? { error: "the load was cancelled", code: "aborted" }
            : { error: holders.failed(holder, err), code: "unavailable" };
        resolve(new Map(nodeIds.map((id) => [id, failed ?? answerOf(res?.nodes.find((n) => n.nodeId === id))])));
        this.emit("drain"); // no more waiting on it
      });
    });
    this.stream = stream;
    this.stream.on("drain", () => this.drained());
  }

  write(data: Buffer): boolean {
    if (this.done) return true;
    this.queued += data.length;
    this.stream.write(this.chunk({ data }), () => {
      this.queued -= data.length;
      this.drained();
    });
    return !this.full();
  }

  private full(): boolean {
    return this.stream.writableNeedDrain || this.queued >= LOAD_WINDOW_BYTES;
  }

  private drained(): void {
    if (!this.full()) this.emit("drain");
  }

  end(): Promise<Map<string, ImageAnswer>> {
    if (!this.done) this.stream.end(this.chunk({ data: Buffer.alloc(0), last: true }));
    return this.answers;
  }

  abort(): void {
    if (!this.done) this.stream.cancel();
  }

  /** The first chunk names the holder's nodes, local_only. */
  private chunk(c: wire.LoadImageChunk): wire.LoadImageChunk {
    if (!this.first) return c;
    this.first = false;
    return { ...c, nodes: [...this.nodeIds], localOnly: true };
  }
}

/**
 * One load across managers: the part here and each holder's get every piece;
 * `write` is false while any part is not draining, and "drain" comes once
 * every one is again.
 */
class PeerImageLoad extends EventEmitter<{ drain: [] }> implements NodeImageLoad {
  private readonly parts: NodeImageLoad[];
  private readonly waiting = new Set<NodeImageLoad>();

  constructor(
    local: NodeImageLoad,
    holders: HolderLoad[],
    /** Nodes whose holder could not be found, with why. */
    private readonly unknown: Map<string, ImageAnswer>,
  ) {
    super();
    this.parts = [local, ...holders];
    for (const part of this.parts) part.once("drain", () => this.drained(part));
  }

  write(data: Buffer): boolean {
    for (const part of this.parts) if (!part.write(data)) this.waiting.add(part);
    return this.waiting.size === 0;
  }

  async end(): Promise<Map<string, ImageAnswer>> {
    const answers = await Promise.all(this.parts.map((p) => p.end()));
    return new Map([...this.unknown, ...answers.flatMap((a) => [...a])]);
  }

  abort(): void {
    this.removeAllListeners("drain");
    for (const part of this.parts) part.abort();
  }

  private drained(part: NodeImageLoad): void {
    part.once("drain", () => this.drained(part));
    if (this.waiting.delete(part) && this.waiting.size === 0) this.emit("drain");
  }
}
