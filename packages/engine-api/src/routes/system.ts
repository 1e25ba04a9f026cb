// The swarm-wide routes: _ping, version, info, swarm (join tokens), and the
// answers the CLI needs from a daemon vipmesh is not (secrets, configs;
// distribution is images.ts's). All reads: their op is ListNodes, which every reader may call.

import { platform, release } from "node:os";
import { type Node, nodeRuntimes, TASK_RUNTIMES, type TaskRuntime, VipmeshError } from "@vipmesh/core";
import type { Ctx, Route } from "../http.ts";
import { ARCHITECTURE, GOARCH } from "../json/platform.ts";
import { API_VERSION, MIN_API_VERSION, VIPMESH_VERSION } from "../version.ts";

const READ = "ListNodes";

function ping(ctx: Ctx): undefined {
  ctx.res.writeHead(200, { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-cache, no-store, must-revalidate", Pragma: "no-cache", Swarm: "active/manager", "Content-Length": 2 });
  ctx.res.end(ctx.method === "HEAD" ? undefined : "OK");
  return undefined;
}

function version() {
  return {
    Platform: { Name: "vipmesh" },
    Components: [{ Name: "vipmesh manager", Version: VIPMESH_VERSION, Details: { ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, Os: "linux", Arch: GOARCH } }],
    Version: VIPMESH_VERSION,
    ApiVersion: API_VERSION,
    MinAPIVersion: MIN_API_VERSION,
    GitCommit: "",
    GoVersion: process.version,
    Os: "linux",
    Arch: GOARCH,
    KernelVersion: platform() === "linux" ? release() : "",
    BuildTime: "",
  };
}

/** Swarm's cluster spec: the CLI prints these in `docker info`; vipmesh's equivalents where it has them. */
function clusterSpec() {
  return {
    Name: "default",
    Labels: {},
    Orchestration: { TaskHistoryRetentionLimit: 5 },
    Raft: { SnapshotInterval: 0, KeepOldSnapshots: 0, LogEntriesForSlowFollowers: 0, ElectionTick: 0, HeartbeatTick: 0 },
    Dispatcher: { HeartbeatPeriod: 5_000_000_000 },
    CAConfig: { NodeCertExpiry: 90 * 24 * 3600 * 1_000_000_000 },
    TaskDefaults: {},
    EncryptionConfig: { AutoLockManagers: false },
  };
}

function cluster(ctx: Ctx) {
  const m = ctx.ops.manager();
  return {
    ID: m.clusterId,
    Version: { Index: ctx.ops.version() },
    CreatedAt: m.clusterCreatedAt,
    UpdatedAt: m.clusterCreatedAt,
    Spec: clusterSpec(),
    TLSInfo: { TrustRoot: "", CertIssuerSubject: "", CertIssuerPublicKey: "" },
    RootRotationInProgress: false,
    DefaultAddrPool: [],
    SubnetSize: 24,
    DataPathPort: 4789,
  };
}

/** What runs each task runtime, as Docker's Runtimes map names it (its path). */
const RUNTIME_PATHS: Record<TaskRuntime, string> = { process: "vipmesh-agent", container: "runc" };

/** Docker's Runtimes: those of the nodes not down, in TASK_RUNTIMES' order. */
function runtimesJson(nodes: readonly Node[]): Record<string, { path: string }> {
  const have = new Set(nodes.filter((n) => n.status.state !== "down").flatMap((n) => nodeRuntimes(n)));
  return Object.fromEntries(TASK_RUNTIMES.filter((r) => have.has(r)).map((r) => [r, { path: RUNTIME_PATHS[r] }]));
}

function info(ctx: Ctx) {
  const m = ctx.ops.manager();
  const managers = ctx.ops.managers();
  const nodes = ctx.ops.listNodes();
  const services = ctx.ops.listServices();
  return {
    ID: m.id,
    Name: m.hostname,
    ServerVersion: VIPMESH_VERSION,
    OperatingSystem: "vipmesh",
    OSType: "linux",
    OSVersion: "",
    KernelVersion: platform() === "linux" ? release() : "",
    Architecture: ARCHITECTURE,
    NCPU: 0,
    MemTotal: 0,
    Containers: 0,
    ContainersRunning: 0,
    ContainersPaused: 0,
    ContainersStopped: 0,
    Images: 0,
    Driver: "vipmesh",
    DriverStatus: [],
    Plugins: { Volume: [], Network: ["overlay"], Authorization: null, Log: [] },
    MemoryLimit: true,
    SwapLimit: false,
    CpuCfsPeriod: true,
    CpuCfsQuota: true,
    IPv4Forwarding: true,
    Debug: false,
    NFd: 0,
    NGoroutines: 0,
    SystemTime: new Date().toISOString(),
    LoggingDriver: "",
    CgroupDriver: "",
    CgroupVersion: "2",
    NEventsListener: 0,
    IndexServerAddress: "",
    RegistryConfig: { IndexConfigs: {}, InsecureRegistryCIDRs: [], Mirrors: [] },
    DockerRootDir: "",
    HttpProxy: "",
    HttpsProxy: "",
    NoProxy: "",
    Labels: [],
    ExperimentalBuild: false,
    // the task runtimes the cluster's nodes have (the manager runs none): "process", a confined host command,
    // "container", an image through containerd and runc; an image runs as a container, hence the default
    Runtimes: runtimesJson(nodes),
    DefaultRuntime: "container",
    LiveRestoreEnabled: false,
    Isolation: "",
    InitBinary: "",
    SecurityOptions: [],
    Warnings: [],
    Swarm: {
      NodeID: m.id,
      NodeAddr: m.addr.replace(/:\d+$/, ""),
      LocalNodeState: "active",
      ControlAvailable: true,
      Error: "",
      RemoteManagers: managers.map((x) => ({ NodeID: x.id, Addr: x.addr })),
      // managers count: `docker node ls` lists them
      Nodes: nodes.length + managers.length,
      Managers: managers.length,
      Cluster: cluster(ctx),
    },
    // vipmesh's own, for scripts: what the cluster runs
    Vipmesh: { Services: services.length },
  };
}

/**
 * GET /swarm. Join tokens are writers' (POLICY's GetJoinToken), as on gRPC: a
 * reader gets the rest with empty tokens, as does anyone on an --insecure
 * manager, which has none (no CA).
 */
async function swarm(ctx: Ctx) {
  const token = async (role: "worker" | "manager") => {
    if (!ctx.may("GetJoinToken")) return "";
    try {
      return await ctx.ops.joinToken(role);
    } catch (err) {
      if (err instanceof VipmeshError && err.code === "failed_precondition") return "";
      throw err;
    }
  };
  return { ...cluster(ctx), JoinTokens: { Worker: await token("worker"), Manager: await token("manager") } };
}

export const systemRoutes: Route[] = [
  { method: "HEAD", path: "/_ping", op: READ, handle: ping },
  { method: "GET", path: "/_ping", op: READ, handle: ping },
  { method: "GET", path: "/version", op: READ, handle: version },
  { method: "GET", path: "/info", op: READ, handle: info },
  { method: "GET", path: "/swarm", op: READ, handle: swarm },
  // stack rm and deploy ask; vipmesh has neither secrets nor configs yet
  { method: "GET", path: "/secrets", op: READ, handle: () => [] },
  { method: "GET", path: "/configs", op: READ, handle: () => [] },
];
