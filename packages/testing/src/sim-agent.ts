// A simulated node agent: it registers, keeps a real gRPC session with the
// manager, applies every assignment to a network view, acknowledges it, and
// reports its tasks running (or failed, when `fails(task)` says so; ended
// later, as a process exiting, when `exits(task)` or `exit()` says so). It runs
// nothing: it stands in for many nodes in control-plane tests and benchmarks.
// It answers log requests from `logs`, which tests fill (and append to, for
// follow) by hand, in a real agent's line format (task-log.ts): a plain line
// goes out as stdout timed when sent, a line already in that form as it is.
// Images: `images` is its image store (tests fill it; `loadImage` says what a
// loaded tarball holds), each load's pieces are kept in `imageLoads`, and
// `holdImageAcks` stops acknowledging them, like a node whose import lags;
// `ignoreImageRequests` leaves lists, removals and loads' ends unanswered.

import type * as grpc from "@grpc/grpc-js";
import {
  assignmentFromWire,
  call,
  type ClientCredentials,
  dispatcherClient,
  type DispatcherServiceClient,
  formatTaskLogLine,
  isSince,
  type LogPiece,
  logTime,
  logPieceToWire,
  logRequestFromWire,
  NodeIdentity,
  parseTaskLogLine,
  type wire,
} from "@vipmesh/api";
import { type NetworkView, type Task, applyViewDelta, emptyView, imageRepository, taskName } from "@vipmesh/core";
import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";

export interface SimAgentOptions {
  hostname: string;
  addr: string;
  labels?: Record<string, string>;
  /** The dataplane it says it runs at Register ("nftables", "ipvs"); default: says nothing, as an older agent. */
  dataplane?: string;
  /** The task runtimes it says it has at Register; default: both, so that image services place on it. [] says none (process only). */
  runtimes?: string[];
  /** The resources it offers reservations; default: SIM_RESOURCES, room for any test's; null says none. */
  resources?: { nanoCpus?: number; memoryBytes?: number } | null;
  /** Tasks for which this returns a message fail with it instead of running. */
  fails?: (task: Task) => string | undefined;
  /** Tasks for which this returns an exit code run, then exit with it after `afterMs` (default 0), as a real agent reports it. */
  exits?: (task: Task) => { code: number; afterMs?: number } | undefined;
  /** A gRPC connection of its own, as a real agent in its own process has (benchmarks). */
  ownConnection?: boolean;
  /** The worker join token: the agent joins (certificate in memory) before it registers; without one it speaks plaintext to an --insecure manager. */
  token?: string;
  /** An identity it joined with before (an agent restarted with its state dir): no join, the same node. */
  identity?: NodeIdentity;
  /** What a loaded tarball holds: its image names, or an Error (a bad tarball); default: none, the load is refused. */
  loadImage?: (tar: Buffer) => string[] | Error;
}

/** What a SimAgent offers by default: more than any test reserves. */
export const SIM_RESOURCES = { nanoCpus: 64e9, memoryBytes: 256 * 1024 ** 3 } as const;

export class SimAgent extends EventEmitter<{ assignment: [wire.Assignment]; closed: [Error | undefined] }> {
  client!: DispatcherServiceClient;
  /** The certificate it joined with, when it had a token. */
  identity: NodeIdentity | undefined;
  nodeId = "";
  view: NetworkView = emptyView();
  version = 0;
  private stream: grpc.ClientDuplexStream<wire.SessionUp, wire.SessionDown> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly reported = new Map<string, string>();
  /** What each task printed, for log requests: `agent.logs.set(taskId, "a\nb\n")` (or lines in task-log.ts's form, for stderr and times). */
  readonly logs = new Map<string, string>();
  /** Tasks whose logs cannot grow any more: a follow of them ends. */
  private readonly endedLogs = new Set<string>();
  /** Followed log requests: request ID → tasks not yet ended. */
  private readonly followers = new Map<number, Set<string>>();
  /** Its images by name (normalized: docker.io/library/web:1), as its containerd would list them. */
  readonly images = new Map<string, SimImage>();
  /** Every image load it was sent, by request ID: the pieces in the order they came, and whether it ended. */
  readonly imageLoads = new Map<number, { pieces: Buffer[]; seqs: number[]; ended: boolean; aborted: boolean }>();
  private holdingImageAcks = false;
  private ignoringImageRequests = false;
  private readonly heldImageAcks: { requestId: number; seq: number }[] = [];

  constructor(
    readonly address: string,
    readonly options: SimAgentOptions,
  ) {
    super();
  }

  async start(): Promise<this> {
    this.identity ??= this.options.identity;
    this.nodeId ||= this.identity?.nodeId ?? "";
    if (this.options.token && !this.identity) {
      this.identity = await NodeIdentity.obtain({ manager: this.address, token: this.options.token });
      this.nodeId = this.identity.nodeId;
    }
    const credentials: ClientCredentials = this.identity ? { identity: this.identity.source } : "insecure";
    this.client ??= dispatcherClient(this.address, credentials, { ownConnection: this.options.ownConnection });
    const res = await call(this.client, "register", {
      hostname: this.options.hostname,
      addr: this.options.addr,
      nodeId: this.nodeId,
      labels: this.options.labels ?? {},
      ...(this.options.dataplane !== undefined ? { dataplane: this.options.dataplane } : {}),
      runtimes: this.options.runtimes ?? ["process", "container"],
      ...(this.options.resources !== null ? { resources: this.options.resources ?? SIM_RESOURCES } : {}),
    });
    this.nodeId = res.nodeId;
    const stream = this.client.session();
    this.stream = stream;
    const opened = new Promise<void>((resolve, reject) => {
      stream.once("data", () => resolve());
      stream.once("error", reject);
    });
    stream.on("data", (msg: wire.SessionDown) => this.onMessage(msg));
    stream.on("error", (err) => this.emit("closed", err));
    stream.on("end", () => this.emit("closed", undefined));
    stream.write({ open: { nodeId: this.nodeId } });
    await opened;
    return this;
  }

  private onMessage(msg: wire.SessionDown): void {
    if (msg.params) {
      clearInterval(this.heartbeat);
      const period = msg.params.heartbeatPeriodMs;
      this.heartbeat = setInterval(() => this.stream?.write({ heartbeat: {} }), Math.max(10, period / 2));
      return;
    }
    if (msg.logRequest) {
      this.onLogRequest(msg.logRequest);
      return;
    }
    if (msg.logCancel) {
      this.followers.delete(Number(msg.logCancel.requestId));
      return;
    }
    if (msg.imageLoad) {
      this.onImageLoad(msg.imageLoad);
      return;
    }
    if (msg.imageRequest) {
      this.onImageRequest(msg.imageRequest);
      return;
    }
    if (!msg.assignment) return;
    const a = assignmentFromWire(msg.assignment);
    if (a.full) this.view = emptyView();
    applyViewDelta(this.view, a.delta);
    this.version = a.version;
    if (!this.holdingAcks) this.stream?.write({ ack: { version: this.version } });
    for (const t of a.full ? this.view.tasks.values() : a.delta.tasks) this.converge(t);
    this.emit("assignment", msg.assignment);
  }

  private holdingAcks = false;

  /** Stops acknowledging assignments, like an agent busy applying them. */
  holdAcks(): void {
    this.holdingAcks = true;
  }

  /** Acknowledges the latest assignment, and the ones after it again. */
  releaseAcks(): void {
    this.holdingAcks = false;
    this.stream?.write({ ack: { version: this.version } });
  }

  /** Acts like a real agent would, instantly: start what should run, stop what should not (once drained). */
  private converge(t: Task): void {
    if (t.desiredState === "shutdown" && !t.drained) return;
    const failure = t.desiredState === "running" ? this.options.fails?.(t) : undefined;
    const state = t.desiredState === "shutdown" ? "shutdown" : failure ? "failed" : "running";
    const prior = this.reported.get(t.id);
    if (prior === state || (state === "running" && (prior === "complete" || prior === "failed"))) return; // an ended task stays so
    this.reported.set(t.id, state);
    this.stream?.write({ taskStatus: { taskId: t.id, status: { state, err: failure ?? "", message: state } } });
    const exit = state === "running" ? this.options.exits?.(t) : undefined;
    if (exit) setTimeout(() => this.exit(t.id, exit.code), exit.afterMs ?? 0).unref();
  }

  /** A running task's process exits with `code`: complete (0) or failed ("exit status N"), as a real agent reports it. */
  exit(taskId: string, code: number): void {
    if (this.reported.get(taskId) !== "running" || !this.stream) return;
    this.report(taskId, code === 0 ? "complete" : "failed", code === 0 ? "" : `exit status ${code}`);
  }

  /** Reports a task's state by hand (e.g. a process that died). */
  report(taskId: string, state: string, err = ""): void {
    this.reported.set(taskId, state);
    this.stream?.write({ taskStatus: { taskId, status: { state, err, message: state } } });
  }

  /** How many log requests it was sent. */
  logRequests = 0;

  private onLogRequest(msg: wire.LogRequest): void {
    this.logRequests++;
    const { requestId, request: req } = logRequestFromWire(msg);
    const open = new Set<string>();
    for (const taskId of req.taskIds) {
      const text = timed(this.logs.get(taskId) ?? "");
      const data = (req.tail > 0 ? lastLines(text, req.tail) : text)
        .split(/(?<=\n)/)
        .filter((line) => line !== "" && isSince(parseTaskLogLine(line), req.since ?? ""))
        .join("");
      if (data) this.sendLog(requestId, { taskId, data: Buffer.from(data) });
      if (req.follow && !this.endedLogs.has(taskId)) open.add(taskId);
      else this.sendLog(requestId, { taskId, eof: true });
    }
    if (open.size > 0) this.followers.set(requestId, open);
  }

  private sendLog(requestId: number, piece: LogPiece): void {
    this.stream?.write({ logData: logPieceToWire(requestId, piece) });
  }

  /** A task prints more: followers of its log get it at once. */
  appendLog(taskId: string, text: string): void {
    this.logs.set(taskId, (this.logs.get(taskId) ?? "") + text);
    for (const [requestId, open] of this.followers) if (open.has(taskId)) this.sendLog(requestId, { taskId, data: Buffer.from(timed(text)) });
  }

  /** A task's log will not grow any more (its process ended): follows of it end. */
  endLog(taskId: string): void {
    this.endedLogs.add(taskId);
    for (const [requestId, open] of this.followers) {
      if (!open.delete(taskId)) continue;
      this.sendLog(requestId, { taskId, eof: true });
      if (open.size === 0) this.followers.delete(requestId);
    }
  }

  /** How many log requests it is following (a cancelled one is not). */
  get logFollows(): number {
    return this.followers.size;
  }

  private onImageLoad(m: wire.ImageLoadData): void {
    let load = this.imageLoads.get(m.requestId);
    if (!load) this.imageLoads.set(m.requestId, (load = { pieces: [], seqs: [], ended: false, aborted: false }));
    if (m.abort) load.aborted = true;
    else if (m.end) {
      load.ended = true;
      if (this.ignoringImageRequests) return;
      const found = this.options.loadImage?.(Buffer.concat(load.pieces)) ?? new Error("this node has no container runtime: its agent found no containerd");
      if (found instanceof Error) {
        this.replyImage({ requestId: m.requestId, error: found.message, code: "invalid_argument" });
        return;
      }
      for (const name of found) this.images.set(name, simImage(name, Buffer.concat(load.pieces)));
      this.replyImage({ requestId: m.requestId, names: found });
    } else {
      load.pieces.push(Buffer.from(m.data));
      load.seqs.push(m.seq);
      if (this.holdingImageAcks) this.heldImageAcks.push({ requestId: m.requestId, seq: m.seq });
      else this.stream?.write({ imageAck: { requestId: m.requestId, seq: m.seq } });
    }
  }

  private onImageRequest(m: wire.ImageRequest): void {
    if (this.ignoringImageRequests) return;
    const users = (name: string) =>
      [...this.view.tasks.values()].filter((t) => t.desiredState === "running" && t.spec.container.image && sameImage(t.spec.container.image, name)).map((t) => taskName(t));
    this.replyImage({ requestId: m.requestId, ...this.answerImage(m, users) });
  }

  private answerImage(m: wire.ImageRequest, users: (name: string) => string[]): Omit<wire.ImageReply, "requestId"> {
    if (m.op === "list") return { images: [...this.images.values()].map((i) => ({ ...i, tasks: users(i.name) })) };
    const matching = [...this.images.keys()].filter((name) => sameImage(m.image, name));
    if (matching.length === 0) return { error: `No such image: ${m.image}`, code: "not_found" };
    const tasks = matching.flatMap(users);
    if (tasks.length > 0 && !m.force) return { error: `image ${m.image} is in use by tasks ${tasks.join(", ")}`, code: "failed_precondition" };
    if (m.check) return { names: [] };
    for (const name of matching) this.images.delete(name);
    return { names: matching };
  }

  private replyImage(reply: wire.ImageReply): void {
    this.stream?.write({ imageReply: reply });
  }

  /** Stops acknowledging image pieces, like a node whose import lags. */
  holdImageAcks(): void {
    this.holdingImageAcks = true;
  }

  /** Answers no image request nor a load's end any more, like an agent stuck in its containerd. */
  ignoreImageRequests(): void {
    this.ignoringImageRequests = true;
  }

  /** Acknowledges the held pieces, and the ones after at once again. */
  releaseImageAcks(): void {
    this.holdingImageAcks = false;
    for (const ack of this.heldImageAcks.splice(0)) this.stream?.write({ imageAck: ack });
  }

  /** Stops heartbeating but keeps the session, like a hung agent. */
  freeze(): void {
    clearInterval(this.heartbeat);
  }

  stop(): void {
    clearInterval(this.heartbeat);
    this.followers.clear();
    this.stream?.cancel();
    this.stream = undefined;
    this.client?.close();
  }
}

/** The last `n` lines of a text; a last line without its newline counts. */
/** Plain lines in a real agent's form: stdout, timed now; lines already in it stay as they are. */
function timed(text: string): string {
  const now = logTime(new Date());
  return text
    .split(/(?<=\n)/)
    .map((line) => (line === "" || parseTaskLogLine(line).time !== "" ? line : formatTaskLogLine(now, "stdout", line.replace(/\n$/, ""))))
    .join("");
}

function lastLines(text: string, n: number): string {
  const lines = text.split(/(?<=\n)/);
  return lines.slice(-n).join("");
}

/** An image of a SimAgent, as an agent lists it. */
export interface SimImage {
  name: string;
  digest: string;
  size: number;
  createdAt: string;
  mediaType: string;
  os: string;
  architecture: string;
}

/** An image with a digest made from its content (or its name). */
export function simImage(name: string, content: Buffer = Buffer.from(name)): SimImage {
  return {
    name,
    digest: `sha256:${createHash("sha256").update(content).digest("hex")}`,
    size: content.length,
    createdAt: new Date().toISOString(),
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    os: "linux",
    architecture: "amd64",
  };
}

/** Whether reference `ref` names the image `name` (repository and tag, Docker Hub's defaults; a digest is ignored). */
function sameImage(ref: string, name: string): boolean {
  const tag = (r: string) => {
    const n = r.split("@")[0] ?? r;
    const colon = n.lastIndexOf(":");
    return colon > n.lastIndexOf("/") ? n.slice(colon + 1) : "latest";
  };
  return imageRepository(ref) === imageRepository(name) && tag(ref) === tag(name);
}
