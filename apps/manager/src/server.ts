// gRPC handlers: translate between wire and domain, nothing more.

import * as grpc from "@grpc/grpc-js";
import { encodeAssignmentDown, logPieceFromWire, logRequestToWire, STALE_METADATA, toStatus, type wire } from "@vipmesh/api";
import { type ErrorCode, exhausted, invalid, permissionDenied, VipmeshError } from "@vipmesh/core";
import type { Cluster } from "./cluster.ts";
import { watchServiceConvergence } from "./convergence.ts";
import type { Dispatcher, SessionChannel, SessionMessage } from "./dispatcher.ts";
import type { Operations } from "./operations.ts";
import type { StatusReports } from "./status-reports.ts";
import { type AuthContextCall, callerOf, sourceAddressOf } from "./security/authz.ts";
import type { CertificateAuthority } from "./security/certificate-authority.ts";
import { RateLimiter } from "./security/rate-limit.ts";
import type { ClusterStore, Commit } from "./store/cluster-store.ts";

type Callback = (err: Partial<grpc.StatusObject> | null, res?: object, trailer?: grpc.Metadata) => void;
type UnaryCall<Req> = AuthContextCall & { request: Req; getPeer(): string };

function unary<Req>(fn: (req: Req, call: UnaryCall<Req>) => object | Promise<object>) {
  return (call: UnaryCall<Req>, callback: Callback): void => {
    let res: object | Promise<object>;
    try {
      res = fn(call.request, call);
    } catch (err) {
      callback(toStatus(err));
      return;
    }
    if (res instanceof Promise) res.then((r) => callback(null, r), (err: unknown) => callback(toStatus(err)));
    else callback(null, res);
  };
}

/** Registrations per node: swarm's 3 per 8 s. */
export const REGISTRATION_LIMIT = { count: 3, windowMs: 8000 };

/** Why this manager's answers may be out of date (it cannot reach the store's quorum), or undefined when they are not. */
export type Staleness = () => string | undefined;

const staleMetadata = (why: string): grpc.Metadata => {
  const md = new grpc.Metadata();
  md.set(STALE_METADATA, why);
  return md;
};

/** Each unary answer given while `stale` says why carries STALE_METADATA (only reads are answered then: the store refuses writes). */
function markStale<H extends object>(handlers: H, stale: Staleness): H {
  const out: Record<string, unknown> = {};
  for (const [name, h] of Object.entries(handlers) as [string, (call: unknown, callback?: Callback) => void][]) {
    out[name] =
      h.length !== 2
        ? h // a stream: Watch marks its own
        : (call: unknown, callback: Callback) =>
            h(call, (err, res) => {
              const why = err ? undefined : stale();
              callback(err, res, why === undefined ? undefined : staleMetadata(why));
            });
  }
  return out as H;
}

/** Every rule is in `ops` (shared with the Engine API); these only unwrap requests and wrap answers. */
export function clusterHandlers(store: ClusterStore, ops: Operations, dispatcher: Dispatcher, stale: Staleness = () => undefined): wire.ClusterServiceHandlers {
  return markStale({
    CreateNetwork: unary(async (req) => ({ network: await ops.createNetwork(req.spec, req.requestId) })),
    InspectNetwork: unary((req) => ({ network: ops.inspectNetwork(req.network) })),
    ListNetworks: unary(() => ({ networks: ops.listNetworks() })),
    RemoveNetwork: unary(async (req) => (await ops.removeNetwork(req.network), {})),

    CreateService: unary(async (req) => ({ service: await ops.createService(req.spec, req.requestId) })),
    InspectService: unary((req) => ({ service: ops.inspectService(req.service) })),
    ListServices: unary(() => ({ services: ops.listServices() })),
    UpdateService: unary(async (req) => ({ service: await ops.updateService(req.service, Number(req.version), req.spec) })),
    RollbackService: unary(async (req) => ({ service: await ops.rollbackService(req.service) })),
    RemoveService: unary(async (req) => (await ops.removeService(req.service), {})),

    ListNodes: unary(() => ({ nodes: ops.listNodes() })),
    InspectNode: unary((req) => ({ node: ops.inspectNode(req.node) })),
    UpdateNode: unary(async (req) => ({ node: await ops.updateNode(req.node, Number(req.version), req.spec as never) })),
    RemoveNode: unary(async (req) => (await ops.removeNode(req.node, req.force), {})),
    ListManagers: unary(() => ({ managers: ops.managers().map(({ id, hostname, addr, createdAt, reachable, leader }) => ({ id, hostname, addr, createdAt, reachable, leader })) })),

    GetJoinToken: unary(async (req) => ({ token: await ops.joinToken(req.role, req.rotate) })),

    LoadImage: (call, callback) => loadImage(ops, call, callback),
    ListImages: unary(async (req) => ({ nodes: await ops.listImages(req.nodes, req.localOnly) })),
    RemoveImage: unary(async (req) => ({ nodes: await ops.removeImage(req.image, req.nodes, req.force, { localOnly: req.localOnly, check: req.check }) })),

    ListTasks: unary((req) => ({ tasks: ops.listTasks({ service: req.service, node: req.node }) })),

    ServiceLogs: (call) => {
      const { service, follow, tail, since, taskIds, localOnly } = call.request;
      let cancel: () => void;
      try {
        cancel = ops.serviceLogs({ service, follow, tail, since, localOnly, ...(taskIds.length > 0 ? { taskIds } : {}) }, {
          write: (c) => call.write({ taskId: c.taskId, slot: c.slot, nodeId: c.nodeId, data: c.data, error: c.error }),
          end: () => call.end(),
        });
      } catch (err) {
        call.emit("error", toStatus(err));
        return;
      }
      call.on("cancelled", cancel);
    },

    WatchServiceConvergence: (call) => {
      let cancel: () => void;
      try {
        cancel = watchServiceConvergence(store, dispatcher, call.request.service, {
          write: (c) => call.write(c),
          end: (error) => (error ? call.emit("error", toStatus(error)) : call.end()),
        });
      } catch (err) {
        call.emit("error", toStatus(err));
        return;
      }
      call.on("cancelled", cancel);
    },

    Watch: (call) => {
      const why = stale();
      if (why !== undefined) call.sendMetadata(staleMetadata(why));
      call.write({
        version: store.version,
        snapshot: {
          nodes: store.list("node"),
          networks: store.list("network"),
          services: store.list("service"),
          tasks: store.list("task"),
        },
        events: [],
      });
      const unsubscribe = store.subscribe((c: Commit) => {
        call.write({
          version: c.version,
          events: c.changes.map((ch) => ({ action: ch.action, [ch.kind]: ch.object })),
        });
      });
      call.on("cancelled", unsubscribe);
      call.on("close", unsubscribe);
    },
  }, stale);
}

export function caHandlers(ca: CertificateAuthority): wire.CaServiceHandlers {
  return {
    GetRootCa: unary(() => ({ caPem: ca.ca.certPem })),
    Join: unary((req, call) => ca.join(req.token, req.csrPem, sourceAddressOf(call))),
    RenewCertificate: unary(async (req, call) => ({ certPem: await ca.renew(callerOf(call)!, req.csrPem) })),
    JoinManager: unary((req, call) => ca.joinManager(req.token, req.etcdCsrPem, sourceAddressOf(call))),
  };
}

/**
 * With a CA, a node is who its certificate says (authz let only node
 * certificates through); a manager started with --insecure takes the
 * request's word for it.
 */
export function dispatcherHandlers(cluster: Cluster, dispatcher: Dispatcher, reports: StatusReports, secure: boolean): wire.DispatcherServiceHandlers {
  const registrations = new RateLimiter(REGISTRATION_LIMIT.count, REGISTRATION_LIMIT.windowMs);
  return {
    Register: unary(async (req, call) => {
      const nodeId = secure ? callerOf(call)!.id : req.nodeId;
      if (!registrations.take(nodeId || req.hostname)) {
        throw exhausted(`node ${nodeId || req.hostname} registers too often (at most ${REGISTRATION_LIMIT.count} times in ${REGISTRATION_LIMIT.windowMs / 1000} s); try again shortly`);
      }
      const offer = { runtimes: req.runtimes ?? [], resources: req.resources };
      return { nodeId: (await cluster.registerNode(req.hostname, req.addr, nodeId, req.labels ?? {}, req.dataplane, secure, offer)).id };
    }),

    Session: (call) => {
      const certified = secure ? callerOf(call)!.id : undefined;
      let nodeId = "";
      const channel: SessionChannel = {
        send: (msg) => {
          // parts shared with other sessions are encoded once; DispatcherServerDef's serializer passes the bytes on
          if (msg.assignment) call.write(encodeAssignmentDown(msg.assignment, msg.assignment.shared ?? []) as never);
          else call.write(sessionDownToWire(msg));
        },
        close: (error) => {
          // a domain error says what it is (a removed node); any other end is UNAVAILABLE: come back
          if (error) call.emit("error", error instanceof VipmeshError ? toStatus(error) : { code: grpc.status.UNAVAILABLE, details: error.message });
          else call.end();
        },
      };
      call.on("data", (msg: wire.SessionUpDecoded) => {
        try {
          if (msg.open) {
            if (nodeId) throw new Error("session already open");
            const asked = msg.open.nodeId ?? "";
            if (certified && asked && asked !== certified) throw permissionDenied(`this certificate is node ${certified}'s, not node ${asked}'s`);
            dispatcher.open(certified ?? asked, channel);
            nodeId = certified ?? asked;
            return;
          }
          if (!nodeId) {
            call.emit("error", { code: grpc.status.FAILED_PRECONDITION, details: "the first message of a session must be `open`" });
            return;
          }
          if (msg.heartbeat) dispatcher.health.heartbeat(nodeId);
          else if (msg.ack) dispatcher.ack(nodeId, Number(msg.ack.version));
          else if (msg.taskStatus) {
            reports.report(nodeId, msg.taskStatus.taskId, msg.taskStatus.status ?? {}).catch((err: unknown) => call.emit("error", toStatus(err)));
          }
          else if (msg.logData) {
            const { requestId, piece } = logPieceFromWire(msg.logData);
            dispatcher.logs.piece(nodeId, requestId, piece);
          } else if (msg.imageAck) dispatcher.images.ack(nodeId, msg.imageAck.requestId, msg.imageAck.seq);
          else if (msg.imageReply) dispatcher.images.reply(nodeId, msg.imageReply.requestId, imageAnswerFromWire(msg.imageReply));
        } catch (err) {
          call.emit("error", toStatus(err));
        }
      });
      const closed = () => {
        if (nodeId) dispatcher.close(nodeId, channel);
      };
      call.on("end", () => {
        closed();
        call.end();
      });
      call.on("cancelled", closed);
      call.on("error", closed);
    },
  };
}

/**
 * LoadImage: the first chunk names the nodes and starts the relay (the caller
 * waits while it finds which manager holds each node's session); each chunk
 * goes on as it comes, and the caller's stream pauses while a node's window
 * (or another manager's stream) is full. The chunk marked last completes the
 * load; a stream that ends or is cancelled before it aborts the load on every node.
 */
function loadImage(ops: Operations, call: grpc.ServerReadableStream<wire.LoadImageChunkDecoded, unknown>, callback: Callback): void {
  type Load = Awaited<ReturnType<Operations["loadImage"]>>;
  let load: Load | undefined;
  let settled = false;
  const fail = (err: unknown) => {
    if (settled) return;
    settled = true;
    load?.load.abort();
    callback(toStatus(err));
  };
  /** Sends a chunk on; false when the caller must wait (it is paused until "drain"). */
  const take = (l: Load, chunk: wire.LoadImageChunkDecoded): boolean => {
    const more = chunk.data.length === 0 || l.load.write(chunk.data);
    if (!more) {
      call.pause();
      l.load.once("drain", () => call.resume());
    }
    if (chunk.last) {
      settled = true;
      l.results().then(
        (nodes) => callback(null, { nodes }),
        (err: unknown) => callback(toStatus(err)),
      );
    }
    return more;
  };
  call.on("data", (chunk: wire.LoadImageChunkDecoded) => {
    if (settled) return;
    if (load) return void take(load, chunk);
    call.pause();
    ops.loadImage(chunk.nodes, chunk.localOnly).then((l) => {
      if (settled) return l.load.abort(); // the caller went meanwhile
      load = l;
      if (take(l, chunk)) call.resume();
    }, fail);
  });
  const abandoned = () => fail(invalid("the image stream ended before its last chunk: the load was abandoned on every node"));
  call.on("end", abandoned);
  call.on("cancelled", abandoned);
  call.on("error", abandoned);
}

/** A node's image answer as the relay takes it. */
function imageAnswerFromWire(r: wire.ImageReplyDecoded) {
  return { names: r.names, images: r.images, ...(r.error ? { error: r.error, ...(r.code ? { code: r.code as ErrorCode } : {}) } : {}) };
}

/** A session message other than an assignment as it goes on the wire (assignments: encodeAssignmentDown). */
function sessionDownToWire({ params, logRequest, logCancel, imageLoad, imageRequest, managers }: SessionMessage) {
  return {
    ...(params ? { params } : {}),
    ...(logRequest ? { logRequest: logRequestToWire(logRequest.requestId, logRequest.request) } : {}),
    ...(logCancel ? { logCancel } : {}),
    ...(imageLoad ? { imageLoad } : {}),
    ...(imageRequest ? { imageRequest } : {}),
    ...(managers ? { managers: { addrs: managers } } : {}),
  };
}
