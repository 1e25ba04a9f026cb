// The image relay: image loads, lists and removals ride the agents' sessions,
// like the log relay. A load's tarball goes down in pieces as the caller
// streams it, never held whole here: each node acknowledges the pieces its
// containerd took in, and the caller is paused while any node has more than
// LOAD_WINDOW_BYTES unacknowledged (which also bounds each session's write buffer).
// Nothing waits on a node forever: an ask it does not answer within
// IMAGE_TIMEOUTS.askMs answers "unavailable" (so /distribution, ls and rm never
// hang on one stuck node), and a load that acknowledges no piece for
// IMAGE_TIMEOUTS.loadIdleMs (or, once whole, does not answer within
// loadFinishMs) fails on that node while the others go on.

import type { wire } from "@vipmesh/api";
import { type ErrorCode, notFound, precondition, VipmeshError } from "@vipmesh/core";
import { EventEmitter } from "node:events";
import type { SessionChannel } from "./dispatcher.ts";
import type { ClusterStore } from "./store/cluster-store.ts";

/** Bytes of a load a node may have unacknowledged before the caller waits. */
export const LOAD_WINDOW_BYTES = 4 * 1024 * 1024;

/** How long a node may keep the relay waiting (tests shorten them). */
export const IMAGE_TIMEOUTS = {
  /** For its answer to a list or removal. */
  askMs: 10_000,
  /** For a load's next acknowledgement while it has pieces unacknowledged. */
  loadIdleMs: 60_000,
  /** For a load's answer once it has every piece (its import and unpack finish). */
  loadFinishMs: 5 * 60_000,
};

const seconds = (ms: number): string => `${Math.round(ms / 100) / 10}s`;

/** One node's answer: names loaded or removed, its images, or why not (`code`: the error's kind, when the agent said). */
export interface ImageAnswer {
  names?: string[];
  images?: wire.NodeImage[];
  error?: string;
  code?: ErrorCode;
}

/** What a node is asked besides loads. */
export interface ImageQuestion {
  op: "list" | "remove";
  image?: string;
  force?: boolean;
  /** remove only: say whether it could, remove nothing. */
  check?: boolean;
}

/** A load to several nodes, as the LoadImage handler drives it (ImageLoad, or ha/peer-images.ts's across managers). */
export interface NodeImageLoad {
  /** Sends a piece on; false: wait for "drain" before the next. */
  write(data: Buffer): boolean;
  once(event: "drain", listener: () => void): unknown;
  /** The tarball is whole: every node's answer, by node ID, once all came. */
  end(): Promise<Map<string, ImageAnswer>>;
  /** The caller went away: every node drops what it had. */
  abort(): void;
}

/** What the image operations ask of nodes: this manager's ImageRelay, or with several managers ha/peer-images.ts's. */
export interface NodeImages {
  ask(nodeId: string, q: ImageQuestion): Promise<ImageAnswer>;
  load(nodeIds: readonly string[]): NodeImageLoad | Promise<NodeImageLoad>;
  notConnected(nodeId: string): ImageAnswer;
}

interface Pending {
  answer: (a: ImageAnswer) => void;
  onAck?: (seq: number) => void;
}

export class ImageRelay implements NodeImages {
  private nextRequestId = 1;
  /** Requests in flight, per session, by request ID. */
  private readonly inFlight = new Map<SessionChannel, Map<number, Pending>>();

  constructor(
    /** The channel of the node's current session, if it has one. */
    private readonly sessionOf: (nodeId: string) => SessionChannel | undefined,
    readonly hostname: (nodeId: string) => string,
  ) {}

  /**
   * Asks a node's agent; resolves with its answer, or an error one when the node
   * has no session, loses it, or does not answer within IMAGE_TIMEOUTS.askMs
   * (the request is then forgotten: a late answer is dropped).
   */
  ask(nodeId: string, q: ImageQuestion): Promise<ImageAnswer> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const sent = this.open(nodeId, {
        answer: (a) => {
          clearTimeout(timer);
          resolve(a);
        },
      });
      if (!sent) return resolve(this.notConnected(nodeId));
      const { requestId, channel } = sent;
      const limit = IMAGE_TIMEOUTS.askMs;
      timer = setTimeout(() => {
        this.forget(channel, requestId);
        resolve({ error: `node ${this.hostname(nodeId)} did not answer within ${seconds(limit)}`, code: "unavailable" });
      }, limit);
      channel.send({ imageRequest: { requestId, op: q.op, image: q.image ?? "", force: q.force ?? false, check: q.check ?? false } });
    });
  }

  /** Starts a load to these nodes; write the tarball's pieces to it, then end it. */
  load(nodeIds: readonly string[]): ImageLoad {
    return new ImageLoad(this, nodeIds);
  }

  /** Registers a request to a node's current session; undefined when it has none. */
  open(nodeId: string, pending: Pending): { requestId: number; channel: SessionChannel } | undefined {
    const channel = this.sessionOf(nodeId);
    if (!channel) return undefined;
    const requestId = this.nextRequestId++;
    let requests = this.inFlight.get(channel);
    if (!requests) this.inFlight.set(channel, (requests = new Map()));
    requests.set(requestId, pending);
    return { requestId, channel };
  }

  /** Forgets a request (answered, or given up): later messages for it are dropped. */
  forget(channel: SessionChannel, requestId: number): void {
    this.inFlight.get(channel)?.delete(requestId);
  }

  notConnected(nodeId: string): ImageAnswer {
    return { error: `node ${this.hostname(nodeId)} is not connected to the manager`, code: "unavailable" };
  }

  /** A node's answer; one to a request it was not asked (or no longer waited for) is dropped. */
  reply(nodeId: string, requestId: number, answer: ImageAnswer): void {
    const channel = this.sessionOf(nodeId);
    const requests = channel && this.inFlight.get(channel);
    const pending = requests?.get(requestId);
    if (!requests || !pending) return;
    requests.delete(requestId);
    pending.answer(answer);
  }

  /** A node took in a load's pieces up to `seq`. */
  ack(nodeId: string, requestId: number, seq: number): void {
    const channel = this.sessionOf(nodeId);
    if (channel) this.inFlight.get(channel)?.get(requestId)?.onAck?.(seq);
  }

  /** Answers every request of a session that is going away with why. */
  endSession(channel: SessionChannel, error: string): void {
    const requests = this.inFlight.get(channel);
    if (!requests) return;
    this.inFlight.delete(channel);
    const pending = [...requests.values()];
    requests.clear();
    for (const p of pending) p.answer({ error, code: "unavailable" });
  }
}

interface LoadTarget {
  nodeId: string;
  requestId: number;
  channel: SessionChannel;
  seq: number;
  /** Bytes sent, per seq not yet acknowledged. */
  unacked: Map<number, number>;
  unackedBytes: number;
  answer?: ImageAnswer;
  /** Fails the node's part when it owes an acknowledgement or its answer too long (see watch). */
  idle?: NodeJS.Timeout;
}

/**
 * One image load to several nodes. `write` returns false while a node has a
 * full window: wait for "drain". A node that answers early (a bad tarball)
 * or goes away gets no more pieces; the others go on.
 */
export class ImageLoad extends EventEmitter<{ drain: []; answered: [] }> implements NodeImageLoad {
  private readonly targets: LoadTarget[] = [];
  readonly answers = new Map<string, ImageAnswer>();
  private ended = false;

  constructor(
    private readonly relay: ImageRelay,
    nodeIds: readonly string[],
  ) {
    super();
    for (const nodeId of nodeIds) {
      let target: LoadTarget | undefined;
      const sent = relay.open(nodeId, { answer: (a) => target && this.answered(target, a), onAck: (seq) => target && this.acked(target, seq) });
      if (!sent) {
        this.answers.set(nodeId, relay.notConnected(nodeId));
        continue;
      }
      target = { nodeId, ...sent, seq: 0, unacked: new Map(), unackedBytes: 0 };
      this.targets.push(target);
    }
  }

  /** Sends a piece to every node still loading; false: wait for "drain" before the next. */
  write(data: Buffer): boolean {
    if (this.ended) throw new Error("write after the load ended");
    for (const t of this.open()) {
      if (t.unacked.size === 0) this.watch(t, true);
      t.seq++;
      t.unacked.set(t.seq, data.length);
      t.unackedBytes += data.length;
      t.channel.send({ imageLoad: { requestId: t.requestId, seq: t.seq, data, end: false, abort: false } });
    }
    return !this.full();
  }

  /** The tarball is whole: resolves with every node's answer once all came, by node ID. */
  end(): Promise<Map<string, ImageAnswer>> {
    this.ended = true;
    for (const t of this.open()) {
      t.channel.send({ imageLoad: { requestId: t.requestId, seq: t.seq + 1, data: Buffer.alloc(0), end: true, abort: false } });
      if (t.unacked.size === 0) this.watch(t);
    }
    return new Promise((resolve) => {
      const check = () => {
        if (this.open().length > 0) return;
        this.off("answered", check);
        resolve(this.answers);
      };
      this.on("answered", check);
      check();
    });
  }

  /** The caller went away: every node drops what it had of this load. */
  abort(): void {
    this.ended = true;
    this.removeAllListeners("drain");
    for (const t of this.open()) this.drop(t, { error: "the load was cancelled", code: "aborted" });
  }

  /** Stops a node's part: it drops what it had; `a` is its answer. */
  private drop(t: LoadTarget, a: ImageAnswer): void {
    this.relay.forget(t.channel, t.requestId);
    t.channel.send({ imageLoad: { requestId: t.requestId, seq: t.seq + 1, data: Buffer.alloc(0), end: false, abort: true } });
    this.answered(t, a);
  }

  /**
   * (Re)starts a node's timer when it owes something: an acknowledgement of
   * pieces sent (or one about to be: `sending`), or, once the load is whole
   * and acknowledged, its answer. A caller slow to send: the node owes nothing.
   */
  private watch(t: LoadTarget, sending = false): void {
    clearTimeout(t.idle);
    t.idle = undefined;
    const owesAck = sending || t.unacked.size > 0;
    const finishing = this.ended && !owesAck;
    if (t.answer || (!owesAck && !finishing)) return;
    const limit = finishing ? IMAGE_TIMEOUTS.loadFinishMs : IMAGE_TIMEOUTS.loadIdleMs;
    const host = this.relay.hostname(t.nodeId);
    const why = finishing ? `node ${host} did not finish the load within ${seconds(limit)} of its last piece` : `node ${host} acknowledged no piece of the load for ${seconds(limit)}`;
    t.idle = setTimeout(() => this.drop(t, { error: why, code: "unavailable" }), limit);
  }

  /** Bytes not yet acknowledged by the slowest node still loading (tests watch the window). */
  get maxUnackedBytes(): number {
    return Math.max(0, ...this.open().map((t) => t.unackedBytes));
  }

  private open(): LoadTarget[] {
    return this.targets.filter((t) => !t.answer);
  }

  private full(): boolean {
    return this.open().some((t) => t.unackedBytes >= LOAD_WINDOW_BYTES);
  }

  private acked(t: LoadTarget, seq: number): void {
    const wasFull = this.full();
    for (const [s, bytes] of t.unacked) {
      if (s > seq) break;
      t.unacked.delete(s);
      t.unackedBytes -= bytes;
    }
    this.watch(t);
    if (wasFull && !this.full()) this.emit("drain");
  }

  private answered(t: LoadTarget, a: ImageAnswer): void {
    clearTimeout(t.idle);
    const wasFull = this.full();
    t.answer = a;
    this.answers.set(t.nodeId, a);
    this.emit("answered");
    if (wasFull && !this.full()) this.emit("drain");
  }
}

// ---- the cluster's image operations, over the store and the relay -----------

/** One node's part of a load or removal, as the API answers it. */
type NodeImageResult = wire.NodeImageResult;

const hasContainers = (store: ClusterStore, nodeId: string): boolean => store.node(nodeId)?.description.runtimes?.includes("container") ?? false;

/**
 * The nodes an image call goes to: those named (IDs, ID prefixes or
 * hostnames; NOT_FOUND for an unknown one), else every ready node with the
 * container runtime (FAILED_PRECONDITION when there is none).
 */
export function imageTargets(store: ClusterStore, refs: readonly string[]): string[] {
  if (refs.length > 0) return [...new Set(refs.map((r) => store.mustFind("node", r).id))];
  const ids = store
    .list("node")
    .filter((n) => n.status.state === "ready" && hasContainers(store, n.id))
    .sort((a, b) => a.description.hostname.localeCompare(b.description.hostname))
    .map((n) => n.id);
  if (ids.length === 0) throw precondition("no ready node has the container runtime (containerd): start the agents where containerd runs, or name nodes with --node");
  return ids;
}

/** Why a node cannot take images, when it cannot: its agent found no containerd. */
function noRuntime(store: ClusterStore, nodeId: string): ImageAnswer | undefined {
  if (hasContainers(store, nodeId)) return undefined;
  const host = store.node(nodeId)?.description.hostname || nodeId;
  return { error: `node ${host} has no container runtime: its agent found no containerd (see its --containerd-socket)`, code: "failed_precondition" };
}

const resultOf = (store: ClusterStore, nodeId: string, a: ImageAnswer): NodeImageResult => ({
  nodeId,
  hostname: store.node(nodeId)?.description.hostname ?? "",
  images: a.names ?? [],
  error: a.error ?? "",
  code: (a.error && a.code) || "",
});

/** Starts a load; `results` gives each target's part once `end` came. Nodes without the runtime answer at once. */
export async function startImageLoad(store: ClusterStore, relay: NodeImages, refs: readonly string[]) {
  const targets = imageTargets(store, refs);
  const refused = new Map(targets.flatMap((id) => ((a) => (a ? [[id, a] as const] : []))(noRuntime(store, id))));
  const load = await relay.load(targets.filter((id) => !refused.has(id)));
  return {
    load,
    results: async (): Promise<NodeImageResult[]> => {
      const answers = await load.end();
      return targets.map((id) => resultOf(store, id, refused.get(id) ?? answers.get(id) ?? relay.notConnected(id)));
    },
  };
}

/** Every target node's images, or why it could not say. */
export async function listImages(store: ClusterStore, relay: NodeImages, refs: readonly string[]): Promise<wire.NodeImages[]> {
  const targets = imageTargets(store, refs);
  return Promise.all(
    targets.map(async (nodeId) => {
      const a = noRuntime(store, nodeId) ?? (await relay.ask(nodeId, { op: "list" }));
      return { nodeId, hostname: store.node(nodeId)?.description.hostname ?? "", images: a.images ?? [], error: a.error ?? "" };
    }),
  );
}

/**
 * Removes an image from the target nodes that have it, in two rounds so that a
 * refusal leaves every node as it was: first each is asked whether it could
 * (FAILED_PRECONDITION naming the tasks that use it, unless forced), then told to.
 */
export async function removeImage(store: ClusterStore, relay: NodeImages, image: string, refs: readonly string[], force: boolean): Promise<NodeImageResult[]> {
  if (!image.trim()) throw new VipmeshError("invalid_argument", "name the image to remove");
  const targets = imageTargets(store, refs).filter((id) => refs.length > 0 || !noRuntime(store, id));
  const checks = await Promise.all(targets.map(async (id) => [id, noRuntime(store, id) ?? (await relay.ask(id, { op: "remove", image, force, check: true }))] as const));
  const refusals = checks.filter(([, a]) => a.error && a.code !== "not_found");
  if (refusals.length > 0) {
    const inUse = refusals.every(([, a]) => a.code === "failed_precondition");
    const why = refusals.map(([id, a]) => `${store.node(id)?.description.hostname ?? id}: ${a.error}`).join("; ");
    throw inUse ? precondition(why) : new VipmeshError(refusals[0]![1].code ?? "unavailable", why);
  }
  const holders = checks.filter(([, a]) => !a.error).map(([id]) => id);
  if (holders.length === 0) throw notFound(`No such image: ${image}`);
  return Promise.all(holders.map(async (id) => resultOf(store, id, await relay.ask(id, { op: "remove", image, force }))));
}

/**
 * One round of a removal on nodes this manager holds, for the manager that
 * runs the two rounds (RemoveImage's local_only): each node's answer as it
 * gave it (`check`: whether it could), none an error of the call.
 */
export async function askRemoval(store: ClusterStore, relay: NodeImages, image: string, refs: readonly string[], force: boolean, check: boolean): Promise<NodeImageResult[]> {
  return Promise.all(imageTargets(store, refs).map(async (id) => resultOf(store, id, await relay.ask(id, { op: "remove", image, force, check }))));
}
