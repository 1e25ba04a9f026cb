// Wire ↔ domain for what an agent's session carries: assignments (a view delta,
// its version, the overlay keys) and the log relay's messages — one mapping that the manager, the agent and the simulated agent share.

import type { Long } from "@grpc/proto-loader";
import type {
  DesiredState,
  OverlayKeySet,
  PortConfig,
  Protocol,
  ProxyProtocol,
  PublishMode,
  ResourceLimits,
  RestartCondition,
  Task,
  TaskSpec,
  TaskState,
  TaskStatus,
  TaskHealth,
  ViewDelta,
  ViewEndpoint,
  ViewNetwork,
  ViewService,
  VirtualIp,
} from "@vipmesh/core";
import type { Assignment as WireAssignmentInput, Assignment__Output as WireAssignment } from "./generated/vipmesh/v1/Assignment.ts";
import type { EncryptionKeys, EncryptionKeys__Output } from "./generated/vipmesh/v1/EncryptionKeys.ts";
import type { EndpointVirtualIp__Output } from "./generated/vipmesh/v1/EndpointVirtualIp.ts";
import type { LogRequest as WireLogRequestInput, LogRequest__Output as WireLogRequest } from "./generated/vipmesh/v1/LogRequest.ts";
import type { PortConfig__Output } from "./generated/vipmesh/v1/PortConfig.ts";
import type { Task__Output } from "./generated/vipmesh/v1/Task.ts";
import type { TaskLogData as WireLogPieceInput, TaskLogData__Output as WireLogPiece } from "./generated/vipmesh/v1/TaskLogData.ts";
import type { TaskSpec__Output } from "./generated/vipmesh/v1/TaskSpec.ts";
import type { TaskStatus__Output } from "./generated/vipmesh/v1/TaskStatus.ts";
import type { ViewEndpoint__Output } from "./generated/vipmesh/v1/ViewEndpoint.ts";
import type { ViewNetwork__Output } from "./generated/vipmesh/v1/ViewNetwork.ts";
import type { ViewService__Output } from "./generated/vipmesh/v1/ViewService.ts";

/** What the manager sends a node: the change to its view, numbered; `full` replaces everything the node had. */
export interface Assignment {
  version: number;
  full: boolean;
  delta: ViewDelta;
  /** The encrypted overlays' keys: in a full assignment and when they change, to nodes with an encrypted network only; absent: unchanged. */
  encryption?: OverlayKeySet;
}

/** Which logs of a node's tasks to send. */
export interface LogRequest {
  taskIds: string[];
  follow: boolean;
  /** Per task: only the last `tail` lines; 0 = all. */
  tail: number;
  /** Only lines logged at or after this time (task-log.ts's form, `sinceTime`); absent or "": all. Applied after tail, as Docker does. */
  since?: string;
}

/** A piece of a task's log as its agent sends it; `eof` ends the task's part of the request, with `error` when its log could not be read. */
export interface LogPiece {
  taskId: string;
  data?: Buffer;
  eof?: boolean;
  error?: string;
}

/** A uint64 (or int64) as proto-loader gives it: a number with our LOADER_OPTIONS, a string or a Long with others. */
type Uint64 = number | string | Long;

/** A decoded message whose uint64 fields `K` may come as any Uint64. */
type WithUint64<T, K extends keyof T> = Omit<T, K> & { [F in K]: Uint64 };

const uint64 = (v: Uint64): number => (typeof v === "object" ? v.toNumber() : Number(v));

// ---- assignments ------------------------------------------------------------

/** An assignment as it goes down a session: the overlay keys' hex secrets become bytes. */
export function assignmentToWire(a: Assignment): WireAssignmentInput {
  return {
    version: a.version,
    full: a.full,
    ...deltaToWire(a.delta),
    ...(a.encryption ? { encryption: overlayKeysToWire(a.encryption) } : {}),
  };
}

/** A view delta as an assignment's lists (an assignment with nothing else: a shared part, see session-encoding.ts). */
export function deltaToWire(d: ViewDelta): WireAssignmentInput {
  return {
    tasks: d.tasks,
    removedTasks: d.removedTasks,
    networks: d.networks,
    removedNetworks: d.removedNetworks,
    services: d.services,
    removedServices: d.removedServices,
    endpoints: d.endpoints,
    removedEndpoints: d.removedEndpoints,
    peers: d.peers,
    removedPeers: d.removedPeers,
  };
}

/**
 * An assignment as an agent receives it, in the manager's own shapes: the
 * wire's defaults ("", 0, null, []) for what the domain leaves out are left
 * out, enum strings are the manager's (validated before it stored them).
 */
export function assignmentFromWire(a: WithUint64<WireAssignment, "version">): Assignment {
  return {
    version: uint64(a.version),
    full: a.full,
    delta: {
      tasks: a.tasks.map(taskFromWire),
      removedTasks: a.removedTasks,
      networks: a.networks.map(viewNetworkFromWire),
      removedNetworks: a.removedNetworks,
      services: a.services.map(viewServiceFromWire),
      removedServices: a.removedServices,
      endpoints: a.endpoints.map(viewEndpointFromWire),
      removedEndpoints: a.removedEndpoints,
      peers: a.peers.map((p) => ({ nodeId: p.nodeId, addr: p.addr })),
      removedPeers: a.removedPeers,
    },
    ...(a.encryption ? { encryption: overlayKeysFromWire(a.encryption) } : {}),
  };
}

const overlayKeysToWire = (k: OverlayKeySet): EncryptionKeys => ({
  keys: k.keys.map((key) => ({ id: key.id, secret: Buffer.from(key.secret, "hex") })),
  txKeyId: k.txKeyId,
});

const overlayKeysFromWire = (k: EncryptionKeys__Output): OverlayKeySet => ({
  keys: k.keys.map((key) => ({ id: key.id, secret: Buffer.from(key.secret).toString("hex") })),
  txKeyId: k.txKeyId,
});

function taskFromWire(t: Task__Output): Task {
  return {
    id: t.id,
    version: uint64(t.version),
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
    serviceId: t.serviceId,
    serviceName: t.serviceName,
    slot: t.slot,
    nodeId: t.nodeId,
    specVersion: uint64(t.specVersion),
    spec: taskSpecFromWire(t.spec),
    desiredState: t.desiredState as DesiredState,
    status: taskStatusFromWire(t.status),
    networks: t.networks.map((n) => ({ networkId: n.networkId, addresses: n.addresses })),
    ...(t.drained ? { drained: true } : {}),
    ...(t.hostPorts.length > 0 ? { hostPorts: t.hostPorts.map(portFromWire) } : {}),
  };
}

/** The manager always sets a task's spec and status; should one be missing, it decodes as an empty one. */
export function taskSpecFromWire(s: TaskSpec__Output | null): TaskSpec {
  const c = s?.container;
  const limits = resourceLimitsFromWire(s?.resources?.limits);
  const reservations = resourceLimitsFromWire(s?.resources?.reservations);
  const restart = s?.restartPolicy;
  return {
    container: {
      ...(c?.image ? { image: c.image } : {}),
      command: c?.command ?? [],
      ...(c?.args.length ? { args: c.args } : {}),
      ...(c?.hostname ? { hostname: c.hostname } : {}),
      ...(c?.dir ? { dir: c.dir } : {}),
      ...(c && Object.keys(c.labels).length > 0 ? { labels: c.labels } : {}),
      env: c?.env ?? [],
      ...(c?.healthcheck
        ? {
            healthcheck: {
              test: c.healthcheck.test,
              intervalMs: c.healthcheck.intervalMs,
              timeoutMs: c.healthcheck.timeoutMs,
              retries: c.healthcheck.retries,
              startPeriodMs: c.healthcheck.startPeriodMs,
            },
          }
        : {}),
      ...(c?.user ? { user: c.user } : {}),
      ...(c?.capabilityAdd.length ? { capabilityAdd: c.capabilityAdd } : {}),
      ...(c?.capabilityDrop.length ? { capabilityDrop: c.capabilityDrop } : {}),
    },
    ...(limits || reservations ? { resources: { limits: limits ?? {}, ...(reservations ? { reservations } : {}) } } : {}),
    placement: { constraints: s?.placement?.constraints ?? [] },
    forceUpdate: s?.forceUpdate ?? 0,
    ...(restart
      ? {
          restartPolicy: {
            condition: restart.condition as RestartCondition,
            delayMs: restart.delayMs,
            maxAttempts: restart.maxAttempts,
            windowMs: restart.windowMs,
          },
        }
      : {}),
  };
}

/** The limits that are set (the wire's 0s left out, as the manager stores them), or undefined for none. */
function resourceLimitsFromWire(
  l: { nanoCpus: Uint64; memoryBytes: Uint64; pids?: Uint64 } | null | undefined,
): ResourceLimits | undefined {
  if (!l) return undefined;
  const limits: ResourceLimits = {};
  for (const field of ["nanoCpus", "memoryBytes", "pids"] as const) {
    const v = l[field];
    const n = v === undefined ? 0 : uint64(v);
    if (n) limits[field] = n;
  }
  return Object.keys(limits).length > 0 ? limits : undefined;
}

function taskStatusFromWire(s: TaskStatus__Output | null): TaskStatus {
  return {
    state: (s?.state || "new") as TaskState,
    timestamp: s?.timestamp ?? "",
    message: s?.message ?? "",
    err: s?.err ?? "",
    health: (s?.health ?? "") as TaskHealth,
  };
}

const portFromWire = (p: PortConfig__Output): PortConfig => ({
  protocol: p.protocol as Protocol,
  targetPort: p.targetPort,
  publishedPort: p.publishedPort,
  publishMode: p.publishMode as PublishMode,
  ...(p.proxyProtocol ? { proxyProtocol: p.proxyProtocol as ProxyProtocol } : {}),
});

const virtualIpFromWire = (v: EndpointVirtualIp__Output): VirtualIp => ({
  networkId: v.networkId,
  addr: v.addr,
  ...(v.fwmark ? { fwmark: v.fwmark } : {}),
});

const viewNetworkFromWire = (n: ViewNetwork__Output): ViewNetwork => ({
  id: n.id,
  name: n.name,
  subnet: n.subnet,
  gateway: n.gateway,
  vni: n.vni,
  encrypted: n.encrypted,
  ingress: n.ingress,
});

const viewServiceFromWire = (s: ViewService__Output): ViewService => ({
  id: s.id,
  name: s.name,
  endpointMode: s.endpointMode,
  ports: s.ports.map(portFromWire),
  virtualIps: s.virtualIps.map(virtualIpFromWire),
  lbScheduler: s.lbScheduler,
  ...(s.lbAffinity && s.lbAffinity !== "none" ? { lbAffinity: s.lbAffinity, lbAffinityTimeoutS: s.lbAffinityTimeoutS } : {}),
  ...(s.aliases.length > 0 ? { aliases: s.aliases.map((a) => ({ networkId: a.networkId, names: a.names })) } : {}),
});

const viewEndpointFromWire = (e: ViewEndpoint__Output): ViewEndpoint => ({
  key: e.key,
  taskId: e.taskId,
  serviceId: e.serviceId,
  networkId: e.networkId,
  addr: e.addr,
  mac: e.mac,
  nodeId: e.nodeId,
  nodeAddr: e.nodeAddr,
  ready: e.ready,
  weight: e.weight,
});

// ---- the log relay ----------------------------------------------------------

/** A log request as it goes down a session, numbered so that the pieces answering it name it. */
export const logRequestToWire = (requestId: number, req: LogRequest): WireLogRequestInput => ({
  requestId,
  taskIds: req.taskIds,
  follow: req.follow,
  tail: req.tail,
  since: req.since ?? "",
});

/** A log request as an agent receives it. */
export const logRequestFromWire = (w: WithUint64<WireLogRequest, "requestId">): { requestId: number; request: LogRequest } => ({
  requestId: uint64(w.requestId),
  request: { taskIds: w.taskIds, follow: w.follow, tail: w.tail, ...(w.since ? { since: w.since } : {}) },
});

/** A piece of a log as an agent sends it up: `stream.write({ logData: logPieceToWire(requestId, piece) })`. */
export const logPieceToWire = (requestId: number, piece: LogPiece): WireLogPieceInput => ({
  requestId,
  taskId: piece.taskId,
  ...(piece.data ? { data: piece.data } : {}),
  ...(piece.eof ? { eof: true } : {}),
  ...(piece.error ? { error: piece.error } : {}),
});

/** A piece of a log as the manager receives it: the wire's empty data, false eof and "" error are left out. */
export const logPieceFromWire = (w: WithUint64<WireLogPiece, "requestId">): { requestId: number; piece: LogPiece } => ({
  requestId: uint64(w.requestId),
  piece: {
    taskId: w.taskId,
    ...(w.data.length > 0 ? { data: w.data } : {}),
    ...(w.eof ? { eof: true } : {}),
    ...(w.error ? { error: w.error } : {}),
  },
});
