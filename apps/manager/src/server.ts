// gRPC handlers: translate between wire and domain, nothing more.

import * as grpc from "@grpc/grpc-js";
import { assignmentToWire, logPieceFromWire, logRequestToWire, toStatus, type wire } from "@vipmesh/api";
import { exhausted, type ObjectKind, permissionDenied, precondition, VipmeshError } from "@vipmesh/core";
import type { Cluster } from "./cluster.ts";
import { watchServiceConvergence } from "./convergence.ts";
import type { Dispatcher, SessionChannel, SessionMessage } from "./dispatcher.ts";
import { relayServiceLogs } from "./service-logs.ts";
import { type AuthContextCall, callerOf, sourceAddressOf } from "./security/authz.ts";
import type { CertificateAuthority } from "./security/certificate-authority.ts";
import { RateLimiter } from "./security/rate-limit.ts";
import { RequestLog } from "./request-log.ts";
import { WriteQueue } from "./write-queue.ts";
import type { ClusterStore, Commit } from "./store/cluster-store.ts";

type Callback = (err: Partial<grpc.StatusObject> | null, res?: object) => void;
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

const noCa = () => precondition("this manager runs with --insecure: it has no CA, certificates or join tokens");

/** Registrations per node: swarm's 3 per 8 s. */
export const REGISTRATION_LIMIT = { count: 3, windowMs: 8000 };

const byName = <T>(name: (o: T) => string) => (a: T, b: T) => name(a).localeCompare(name(b));

/** `ca` is undefined only for a manager started with --insecure. */
export function clusterHandlers(store: ClusterStore, cluster: Cluster, dispatcher: Dispatcher, ca: CertificateAuthority | undefined): wire.ClusterServiceHandlers {
  const find = <K extends ObjectKind>(kind: K, ref: string) => store.mustFind(kind, ref);
  const writes = new WriteQueue();
  const requests = new RequestLog();
  /** A write: run in turn by the queue; a request ID seen before gets the first answer again. */
  const write = <Req extends object>(method: string, fn: (req: Req) => object) =>
    unary<Req>((req) =>
      writes.run(() => {
        const id = (req as { requestId?: string }).requestId;
        return id ? requests.answer(`${method}/${id}`, () => fn(req)) : fn(req);
      }),
    );
  return {
    CreateNetwork: write("CreateNetwork", (req) => ({ network: cluster.createNetwork(req.spec) })),
    InspectNetwork: unary((req) => ({ network: find("network", req.network) })),
    ListNetworks: unary(() => ({ networks: store.list("network").sort(byName((n) => n.spec.name)) })),
    RemoveNetwork: write("RemoveNetwork", (req) => (cluster.removeNetwork(req.network), {})),

    CreateService: write("CreateService", (req) => ({ service: cluster.createService(req.spec) })),
    InspectService: unary((req) => ({ service: find("service", req.service) })),
    ListServices: unary(() => ({ services: store.list("service").sort(byName((s) => s.spec.annotations.name)) })),
    UpdateService: write("UpdateService", (req) => ({ service: cluster.updateService(req.service, Number(req.version), req.spec) })),
    RollbackService: write("RollbackService", (req) => ({ service: cluster.rollbackService(req.service) })),
    RemoveService: write("RemoveService", (req) => (cluster.removeService(req.service), {})),

    ListNodes: unary(() => ({ nodes: store.list("node").sort(byName((n) => n.description.hostname)) })),
    InspectNode: unary((req) => ({ node: find("node", req.node) })),
    UpdateNode: write("UpdateNode", (req) => ({ node: cluster.updateNode(req.node, Number(req.version), req.spec as never) })),
    RemoveNode: write("RemoveNode", (req) => (cluster.removeNode(req.node, req.force), {})),

    GetJoinToken: unary((req) => {
      if (!ca) throw noCa();
      return { token: ca.joinToken(req.role, req.rotate) };
    }),

    ListTasks: unary((req) => {
      const service = req.service ? find("service", req.service).id : undefined;
      const node = req.node ? find("node", req.node).id : undefined;
      const tasks = store
        .list("task")
        .filter((t) => (!service || t.serviceId === service) && (!node || t.nodeId === node))
        .sort((a, b) => a.serviceName.localeCompare(b.serviceName) || a.slot - b.slot || b.createdAt.localeCompare(a.createdAt));
      return { tasks };
    }),

    ServiceLogs: (call) => {
      const { service, follow, tail } = call.request;
      let cancel: () => void;
      try {
        cancel = relayServiceLogs(store, dispatcher.logs, { service, follow, tail }, {
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
  };
}

export function caHandlers(ca: CertificateAuthority): wire.CaServiceHandlers {
  return {
    GetRootCa: unary(() => ({ caPem: ca.ca.certPem })),
    Join: unary((req, call) => ca.join(req.token, req.csrPem, sourceAddressOf(call))),
    RenewCertificate: unary(async (req, call) => ({ certPem: await ca.renew(callerOf(call)!, req.csrPem) })),
  };
}

/**
 * With a CA, a node is who its certificate says (authz let only node
 * certificates through); a manager started with --insecure takes the
 * request's word for it.
 */
export function dispatcherHandlers(cluster: Cluster, dispatcher: Dispatcher, secure: boolean): wire.DispatcherServiceHandlers {
  const registrations = new RateLimiter(REGISTRATION_LIMIT.count, REGISTRATION_LIMIT.windowMs);
  return {
    Register: unary((req, call) => {
      const nodeId = secure ? callerOf(call)!.id : req.nodeId;
      if (!registrations.take(nodeId || req.hostname)) {
        throw exhausted(`node ${nodeId || req.hostname} registers too often (at most ${REGISTRATION_LIMIT.count} times in ${REGISTRATION_LIMIT.windowMs / 1000} s); try again shortly`);
      }
      return { nodeId: cluster.registerNode(req.hostname, req.addr, nodeId, req.labels ?? {}, req.dataplane, secure).id };
    }),

    Session: (call) => {
      const certified = secure ? callerOf(call)!.id : undefined;
      let nodeId = "";
      const channel: SessionChannel = {
        send: (msg) => call.write(sessionDownToWire(msg)),
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
          else if (msg.taskStatus) cluster.reportTaskStatus(nodeId, msg.taskStatus.taskId, msg.taskStatus.status ?? {});
          else if (msg.logData) {
            const { requestId, piece } = logPieceFromWire(msg.logData);
            dispatcher.logs.piece(nodeId, requestId, piece);
          }
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

/** A session message as it goes on the wire. */
function sessionDownToWire({ params, assignment, logRequest, logCancel }: SessionMessage) {
  return {
    ...(params ? { params } : {}),
    ...(assignment ? { assignment: assignmentToWire(assignment) } : {}),
    ...(logRequest ? { logRequest: logRequestToWire(logRequest.requestId, logRequest.request) } : {}),
    ...(logCancel ? { logCancel } : {}),
  };
}
