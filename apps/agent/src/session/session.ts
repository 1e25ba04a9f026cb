// The agent's side of the dispatcher protocol: register once (the node ID is
// kept in the state dir), then hold a session — heartbeats up, assignments
// down, applied to a local network view — and come back with backoff when the
// manager goes away, to the next of the managers it knows (managers.ts; the
// manager tells it their addresses). A new session starts with a full assignment. Log
// requests come down the session too; a server the agent gives answers them,
// until the manager cancels one or the session is lost. Image calls come down
// the same way (a load as a tarball's pieces, each acknowledged once taken in).

import type * as grpc from "@grpc/grpc-js";
import {
  assignmentFromWire,
  call,
  type ClientCredentials,
  dispatcherClient,
  type DispatcherServiceClient,
  isNodeRemoved,
  type LogPiece,
  type LogRequest,
  logPieceToWire,
  logRequestFromWire,
  reconnectDelayMs,
  REGISTER_DEADLINE_MS,
  type wire,
} from "@vipmesh/api";
import {
  applyViewDelta,
  type Dataplane,
  emptyView,
  type NetworkView,
  type OverlayKeySet,
  type Resources,
  type TaskRuntime,
  type ViewDelta,
  VipmeshError,
} from "@vipmesh/core";
import { EventEmitter, once } from "node:events";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough, type Readable } from "node:stream";
import type { NodeImageInfo } from "../images/node-images.ts";
import { ManagerAddresses } from "./managers.ts";

export interface SessionOptions {
  /** The managers' dispatcher addresses, tried in turn; those the cluster tells are added (and kept in the state dir). */
  managers: readonly string[];
  /** The node's certificate; "insecure": plaintext to a manager started with --insecure. */
  credentials: ClientCredentials;
  /** The node ID its certificate carries; without one (insecure) it is kept in the state dir as the manager gives it. */
  nodeId?: string;
  hostname: string;
  advertiseAddr: string;
  stateDir: string;
  /** What balances VIPs here, told to the manager at Register (it refuses specs this cannot honour). Default: nftables. */
  dataplane?: Dataplane;
  /** What runs tasks here, told at Register (the manager places image tasks only where "container" is). Default: process. */
  runtimes?: TaskRuntime[];
  /** What this node offers tasks' reservations. */
  resources?: Resources;
  log: (line: string) => void;
}

export interface TaskStatusReport {
  state: string;
  message?: string;
  err?: string;
  /** "" (no check), "starting", "healthy" or "unhealthy". */
  health?: string;
}

/** Answers a log request through `send`; resolves when it is done or `signal` aborted it. */
export type LogServer = (req: LogRequest, send: (piece: LogPiece) => Promise<void>, signal: AbortSignal) => Promise<void>;

/** Answers the manager's image calls (images/: the node's containerd). */
export interface ImageServer {
  load(tar: Readable): Promise<string[]>;
  list(): Promise<NodeImageInfo[]>;
  remove(ref: string, o: { force: boolean; check: boolean }): Promise<string[]>;
}

/** What an image load's tarball stream buffers before its pieces wait (and so their acknowledgements). */
const IMAGE_LOAD_BUFFER_BYTES = 1024 * 1024;

/**
 * `view`: the delta just applied to the view, and whether it was a full assignment (the view made anew).
 * `removed`: the manager removed this node (the manager's words); the view is empty, and the session over for good.
 */
export type SessionEvents = { open: []; view: [delta: ViewDelta, full: boolean]; removed: [why: string] };

/** What the agent needs of its session with the manager (ManagerSession; FakeSession in unit tests). */
export interface AgentSession extends Pick<EventEmitter<SessionEvents>, "on"> {
  /** The node's network view, changed in place by every assignment. */
  readonly view: NetworkView;
  /** Version of the assignment the view holds; 0 before the first one. */
  readonly version: number;
  readonly nodeId: string;
  /** The encrypted overlays' keys as the manager last sent them. */
  readonly encryption: OverlayKeySet | undefined;
  start(): void;
  stop(): void;
  ack(version: number): void;
  report(taskId: string, status: TaskStatusReport): void;
  serveLogs(server: LogServer): void;
  serveImages(server: ImageServer): void;
}

/** Empties a view in place (a full assignment, a removed node). */
export function clearView(view: NetworkView): void {
  for (const map of Object.values(view)) (map as Map<string, unknown>).clear();
}

export class ManagerSession extends EventEmitter<SessionEvents> implements AgentSession {
  readonly view: NetworkView = emptyView();
  /** Version of the assignment the view holds; 0 before the first one. */
  version = 0;
  /** The encrypted overlays' keys; undefined until an assignment brings them (only nodes with an encrypted network get them). */
  encryption: OverlayKeySet | undefined;
  nodeId = "";
  private readonly managers: ManagerAddresses;
  /** The client of the manager dialed now, and its address. */
  private client: DispatcherServiceClient | undefined;
  private clientAddress = "";
  private stream: grpc.ClientDuplexStream<wire.SessionUp, wire.SessionDown> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  /** Reconnect attempts that failed in a row (reset once a session opens). */
  private failures = 0;
  private stopped = false;
  private logServer: LogServer | undefined;
  /** Log requests being answered in this session, by request ID. */
  private readonly logRequests = new Map<number, AbortController>();
  private imageServer: ImageServer | undefined;
  /** Image loads being received in this session: request ID → the tarball stream the server reads. */
  private readonly imageLoads = new Map<number, PassThrough>();

  constructor(private readonly options: SessionOptions) {
    super();
    this.managers = new ManagerAddresses(options.managers, options.stateDir);
    if (options.nodeId) this.nodeId = options.nodeId;
    else {
      try {
        this.nodeId = readFileSync(this.nodeIdFile, "utf8").trim();
      } catch {}
    }
  }

  private get nodeIdFile(): string {
    return join(this.options.stateDir, "node-id");
  }

  start(): void {
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.abortLogRequests();
    this.abortImageLoads();
    clearInterval(this.heartbeat);
    clearTimeout(this.retry);
    this.stream?.cancel();
    this.client?.close();
  }

  /** The client of the manager whose turn it is (the one before it closed). */
  private dial(): DispatcherServiceClient {
    const address = this.managers.current;
    if (!this.client || this.clientAddress !== address) {
      this.client?.close();
      this.client = dispatcherClient(address, this.options.credentials);
      this.clientAddress = address;
    }
    return this.client;
  }

  /** Tells the manager that the view of `version` is applied. */
  ack(version: number): void {
    this.stream?.write({ ack: { version } });
  }

  report(taskId: string, status: TaskStatusReport): void {
    this.stream?.write({ taskStatus: { taskId, status: { message: "", err: "", ...status, timestamp: new Date().toISOString() } } });
  }

  /** Who answers the manager's log requests; without one, each task's part ends at once with an error. */
  serveLogs(server: LogServer): void {
    this.logServer = server;
  }

  /** Who answers the manager's image calls; without one (no containerd), each is refused saying so. */
  serveImages(server: ImageServer): void {
    this.imageServer = server;
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const client = this.dial();
    const address = this.clientAddress;
    try {
      const res = await call(
        client,
        "register",
        {
          hostname: this.options.hostname,
          addr: this.options.advertiseAddr,
          nodeId: this.nodeId,
          dataplane: this.options.dataplane ?? "nftables",
          runtimes: this.options.runtimes ?? ["process"],
          resources: this.options.resources ?? null,
        },
        { deadline: Date.now() + REGISTER_DEADLINE_MS },
      );
      if (res.nodeId !== this.nodeId) {
        this.nodeId = res.nodeId;
        writeFileSync(this.nodeIdFile, `${this.nodeId}\n`);
      }
    } catch (err) {
      if (isNodeRemoved(err)) return this.removed((err as grpc.ServiceError).details);
      this.options.log(`cannot register with the manager at ${address}: ${(err as Error).message}`);
      this.reconnectLater();
      return;
    }
    if (this.stopped) return;
    const stream = client.session();
    this.stream = stream;
    stream.on("data", (msg: wire.SessionDown) => this.onMessage(msg));
    const lost = (why: string) => {
      if (this.stream !== stream) return;
      this.stream = undefined;
      this.abortLogRequests();
      this.abortImageLoads();
      clearInterval(this.heartbeat);
      if (!this.stopped) {
        this.options.log(`session with the manager at ${address} lost (${why}); reconnecting`);
        this.reconnectLater();
      }
    };
    stream.on("error", (err: grpc.ServiceError) => (isNodeRemoved(err) ? this.removed(err.details) : lost(err.message)));
    stream.on("end", () => lost("ended by the manager"));
    stream.write({ open: { nodeId: this.nodeId } });
  }

  /**
   * The manager removed this node: it would be refused from now on, so the
   * session ends for good, and the node ID is forgotten (an agent started
   * again joins as a new node). The view empties: the agent takes everything down.
   */
  private removed(why: string): void {
    if (this.stopped) return;
    this.stop();
    rmSync(this.nodeIdFile, { force: true });
    clearView(this.view);
    this.encryption = undefined;
    this.emit("removed", why);
  }

  /** Tries the next manager after the backoff: one that is down is not dialed again before every other had its turn. */
  private reconnectLater(): void {
    clearTimeout(this.retry);
    this.managers.next();
    this.retry = setTimeout(() => void this.connect(), reconnectDelayMs(this.failures++));
  }

  private onMessage(msg: wire.SessionDown): void {
    if (msg.params) {
      this.failures = 0;
      this.options.log(`session open as node ${this.nodeId} with the manager at ${this.clientAddress}`);
      clearInterval(this.heartbeat);
      const period = msg.params.heartbeatPeriodMs;
      this.heartbeat = setInterval(() => this.stream?.write({ heartbeat: {} }), Math.max(10, period / 2));
      this.emit("open");
      return;
    }
    if (msg.logRequest) {
      this.onLogRequest(msg.logRequest);
      return;
    }
    if (msg.logCancel) {
      this.logRequests.get(Number(msg.logCancel.requestId))?.abort();
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
    if (msg.managers) {
      try {
        if (this.managers.learn(msg.managers.addrs)) this.options.log(`managers: ${this.managers.all.join(", ")}`);
      } catch (err) {
        // the list is used all the same; a restarted agent would know only what it is given
        this.options.log(`cannot keep the managers' addresses in ${this.options.stateDir}: ${(err as Error).message}`);
      }
      return;
    }
    if (!msg.assignment) return;
    const a = assignmentFromWire(msg.assignment);
    if (a.full) {
      clearView(this.view);
      this.encryption = undefined;
    }
    if (a.encryption) this.encryption = a.encryption;
    applyViewDelta(this.view, a.delta);
    this.version = a.version;
    this.emit("view", a.delta, a.full);
  }

  private onLogRequest(wireRequest: wire.LogRequest): void {
    const stream = this.stream;
    if (!stream) return;
    const { requestId, request } = logRequestFromWire(wireRequest);
    const controller = new AbortController();
    this.logRequests.set(requestId, controller);
    // pieces wait for the stream to drain: a long log neither fills memory nor holds heartbeats back for long
    const send = async (piece: LogPiece): Promise<void> => {
      if (controller.signal.aborted) return;
      if (!stream.write({ logData: logPieceToWire(requestId, piece) })) await once(stream, "drain", { signal: controller.signal });
    };
    const server: LogServer =
      this.logServer ??
      (async (r, answer) => {
        for (const taskId of r.taskIds) await answer({ taskId, eof: true, error: "this agent does not serve logs" });
      });
    server(request, send, controller.signal)
      .catch((err: unknown) => {
        if (!controller.signal.aborted) this.options.log(`log request ${requestId} failed: ${(err as Error).message}`);
      })
      .finally(() => {
        if (this.logRequests.get(requestId) === controller) this.logRequests.delete(requestId);
      });
  }

  /**
   * A piece of an image load: the first (seq 1) starts it; each is
   * acknowledged once the tarball stream took it in, which waits while the
   * import lags. Pieces of a load that already ended (a bad tarball) are dropped.
   */
  private onImageLoad(m: wire.ImageLoadData): void {
    const stream = this.stream;
    if (!stream) return;
    const { requestId, seq } = m;
    let tar = this.imageLoads.get(requestId);
    if (!tar) {
      if (seq !== 1) return;
      tar = new PassThrough({ highWaterMark: IMAGE_LOAD_BUFFER_BYTES });
      this.imageLoads.set(requestId, tar);
      const started = tar;
      const loading = this.imageServer ? this.imageServer.load(started) : Promise.reject(noContainerRuntime());
      void this.answerImage(stream, requestId, loading.then((names) => ({ names }))).finally(() => {
        if (this.imageLoads.get(requestId) === started) this.imageLoads.delete(requestId);
        started.destroy();
      });
    }
    if (m.abort) {
      this.imageLoads.delete(requestId);
      tar.destroy(new Error("the load was cancelled"));
    } else if (m.end) tar.end();
    else tar.write(m.data, (err) => err || stream.write({ imageAck: { requestId, seq } }));
  }

  private onImageRequest(m: wire.ImageRequest): void {
    const stream = this.stream;
    if (!stream) return;
    const server = this.imageServer;
    const answer = async () => {
      if (!server) throw noContainerRuntime();
      if (m.op === "list") return { images: await server.list() };
      if (m.op === "remove") return { names: await server.remove(m.image, { force: m.force, check: m.check }) };
      throw new Error(`unknown image operation "${m.op}"`);
    };
    void this.answerImage(stream, m.requestId, answer());
  }

  /** Sends an image call's answer, or its error with the error's code. */
  private async answerImage(stream: grpc.ClientDuplexStream<wire.SessionUp, wire.SessionDown>, requestId: number, answer: Promise<Omit<wire.ImageReply, "requestId">>): Promise<void> {
    let reply: wire.ImageReply;
    try {
      reply = { requestId, ...(await answer) };
    } catch (err) {
      reply = { requestId, error: (err as Error).message, code: err instanceof VipmeshError ? err.code : "" };
    }
    if (this.stream === stream) stream.write({ imageReply: reply });
  }

  private abortImageLoads(): void {
    for (const tar of this.imageLoads.values()) tar.destroy(new Error("the session with the manager was lost"));
    this.imageLoads.clear();
  }

  private abortLogRequests(): void {
    for (const controller of this.logRequests.values()) controller.abort();
    this.logRequests.clear();
  }
}

const noContainerRuntime = () => new VipmeshError("failed_precondition", "this node has no container runtime: its agent found no containerd (see --containerd-socket)");
