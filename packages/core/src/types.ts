// The cluster model. Field names and shapes follow proto/vipmesh/v1/types.proto
// so that objects cross the wire without a translation layer.

export type NodeAvailability = "active" | "drain";
export type NodeState = "unknown" | "ready" | "down";
export type Protocol = "tcp" | "udp" | "sctp";
export type PublishMode = "ingress" | "host";
export type ProxyProtocol = "v1" | "v2";
export type EndpointMode = "vip" | "dnsrr";
/** Every scheduler some dataplane implements (which one honours which: dataplanes.ts). */
/** nftables: random, rr. IPVS: every scheduler Debian's kernel offers (ip_vs_*). */
export const LB_SCHEDULER_NAMES = ["random", "rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"] as const;
export type LbSchedulerName = (typeof LB_SCHEDULER_NAMES)[number];
export type LbAffinity = "none" | "client-ip";
/** What balances VIPs on a node: its agent says so when it registers. */
export type Dataplane = "nftables" | "ipvs";
export type FailureAction = "pause" | "rollback" | "continue";
export type UpdateOrder = "stop-first" | "start-first";
export type TaskHealth = "" | "starting" | "healthy" | "unhealthy";
export type DesiredState = "running" | "shutdown";
export type UpdateState =
  | ""
  | "updating"
  | "paused"
  | "completed"
  | "rollback_started"
  | "rollback_paused"
  | "rollback_completed";

export const TASK_STATES = [
  "new",
  "pending",
  "assigned",
  "preparing",
  "starting",
  "running",
  "complete",
  "shutdown",
  "failed",
  "rejected",
  "orphaned",
] as const;
export type TaskState = (typeof TASK_STATES)[number];

/** States after which a task never runs again. */
export const TERMINAL_TASK_STATES: ReadonlySet<TaskState> = new Set([
  "complete",
  "shutdown",
  "failed",
  "rejected",
  "orphaned",
]);

export const isTerminal = (state: TaskState): boolean => TERMINAL_TASK_STATES.has(state);

interface Meta {
  id: string;
  /** Bumped on every committed change; updates must name the version they read. */
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface NodeSpec {
  labels: Record<string, string>;
  availability: NodeAvailability;
}

export interface Node extends Meta {
  spec: NodeSpec;
  /**
   * No dataplane: a node stored before agents said, which ran nftables.
   * engineLabels: the labels its agent reports at each registration (Docker's
   * Description.Engine.Labels), apart from the admin's spec.labels; absent on a node stored before.
   */
  description: {
    hostname: string;
    dataplane?: Dataplane;
    engineLabels?: Record<string, string>;
    /** The task runtimes its agent has; absent (stored before agents said): process only. */
    runtimes?: TaskRuntime[];
    /** What the node offers tasks (its agent says, or the admin's override); absent: not said, nothing reserved counts. */
    resources?: Resources;
  };
  /** ingressAddr: the node's ingress sandbox on the ingress network (CIDR), "" before it has one. */
  status: { state: NodeState; message: string; addr: string; ingressAddr?: string };
}

export interface IpamConfig {
  subnet: string;
  gateway: string;
}

export interface NetworkSpec {
  name: string;
  driver: "overlay";
  labels: Record<string, string>;
  options: Record<string, string>;
  ipam: IpamConfig[];
  ingress: boolean;
}

export interface Network extends Meta {
  spec: NetworkSpec;
  ipam: IpamConfig;
  vni: number;
  encrypted: boolean;
}

/** An encrypted overlay's key: AES-256 then the 4-byte GCM salt (rfc4106). */
export const OVERLAY_KEY_BYTES = 36;

/** One key of the encrypted overlays; made by the manager, used by every node's ESP. */
export interface OverlayKey {
  /** Small positive integer, unique in its set; part of every SPI made from this key. */
  id: number;
  /** OVERLAY_KEY_BYTES bytes, hex. */
  secret: string;
}

/** The keys nodes hold: each receives with any of them and sends with txKeyId. */
export interface OverlayKeySet {
  keys: OverlayKey[];
  txKeyId: number;
}

export interface PortConfig {
  protocol: Protocol;
  targetPort: number;
  /** 0 in a spec: assign one from the dynamic range. */
  publishedPort: number;
  publishMode: PublishMode;
  /** A PROXY protocol header with the client's address, sent to the task first (mesh, TCP); absent: none. */
  proxyProtocol?: ProxyProtocol;
}

export interface EndpointSpec {
  mode: EndpointMode;
  ports: PortConfig[];
  /** "" = the dataplane's default ("random" on nftables). */
  lbScheduler: "" | LbSchedulerName;
  /** Slot → share of new connections (default 1; 0 drains the slot). */
  lbWeights: Record<string, number>;
  /**
   * client-ip: a client's new connections to the VIP go to the task its last
   * one went to, while that task takes new connections and until
   * lbAffinityTimeoutS pass without a new connection.
   */
  lbAffinity: LbAffinity;
  /** Seconds with client-ip; 0 with none. */
  lbAffinityTimeoutS: number;
}

export interface HealthCheck {
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export interface ContainerSpec {
  /** Docker's ContainerSpec.Image, kept and shown as given; absent: none (taskCommand says what runs). */
  image?: string;
  /** Docker's Command: the entrypoint; empty when an image's runs. */
  command: string[];
  /** Docker's Args: run after the command, or after the image's entrypoint in place of its default arguments. */
  args?: string[];
  /** Docker's Hostname: the task's host name; absent: the default. */
  hostname?: string;
  /** Docker's Dir: a container's working directory; absent: the image's. */
  dir?: string;
  /** Docker's ContainerSpec.Labels: kept and shown. */
  labels?: Record<string, string>;
  env: string[];
  healthcheck?: HealthCheck | null;
  /** UID[:GID] or NAME[:GROUP] the task runs as; absent: root (uid 0), confined. */
  user?: string;
  /** Capabilities added to / dropped from the default set, as `docker service create --cap-add/--cap-drop` (CAP_ names, or ALL). */
  capabilityAdd?: string[];
  capabilityDrop?: string[];
}

/** A task's limits; 0 or absent = none (pids: the default, DEFAULT_PIDS_LIMIT). */
export interface ResourceLimits {
  nanoCpus?: number;
  memoryBytes?: number;
  pids?: number;
}

/** CPUs and memory: what a task reserves (placement counts it), or what a node offers. 0 or absent = none / not said. */
export interface Resources {
  nanoCpus?: number;
  memoryBytes?: number;
}

/**
 * What runs a task on a node: "process", a host command confined in its
 * sandbox; "container", an OCI image through containerd (core's taskRuntime
 * says which a spec needs; a node's agent says which it has).
 */
export const TASK_RUNTIMES = ["process", "container"] as const;
export type TaskRuntime = (typeof TASK_RUNTIMES)[number];

export const RESTART_CONDITIONS = ["none", "on-failure", "any"] as const;
export type RestartCondition = (typeof RESTART_CONDITIONS)[number];

/** Docker's RestartPolicy: when an ended task's slot gets a new task. */
export interface RestartPolicy {
  condition: RestartCondition;
  delayMs: number;
  /** Restarts of a slot at most (within windowMs when it is not 0); 0 = unlimited. */
  maxAttempts: number;
  /** 0 = unbounded. */
  windowMs: number;
}

export interface TaskSpec {
  container: ContainerSpec;
  /** limits: enforced on the node; reservations: counted by placement against what nodes offer. */
  resources?: { limits: ResourceLimits; reservations?: Resources } | null;
  placement: { constraints: string[] };
  forceUpdate: number;
  /** Absent: Docker's default (any condition, the manager's restart delay, unlimited). */
  restartPolicy?: RestartPolicy | null;
}

export interface UpdateConfig {
  /** Tasks replaced at once; 0 = all. */
  parallelism: number;
  delayMs: number;
  failureAction: FailureAction;
  monitorMs: number;
  order: UpdateOrder;
}

/** A service's place on a network. */
export interface NetworkAttachmentConfig {
  /** The network's ID (a name or prefix as given, until the manager resolves it). */
  target: string;
  /** More names the service answers to in the embedded DNS of this network (compose's service names); absent: none. */
  aliases?: string[];
}

export interface ServiceSpec {
  annotations: { name: string; labels: Record<string, string> };
  taskTemplate: TaskSpec;
  replicated?: { replicas: number } | null;
  global?: Record<string, never> | null;
  networks: NetworkAttachmentConfig[];
  endpointSpec: EndpointSpec;
  updateConfig: UpdateConfig;
  rollbackConfig: UpdateConfig;
}

export interface VirtualIp {
  networkId: string;
  /** CIDR, e.g. 10.0.3.2/24 */
  addr: string;
  /** Its firewall mark on the IPVS dataplane, from 256 (absent: stored before marks were handed out). */
  fwmark?: number;
}

export interface ServiceEndpoint {
  spec: EndpointSpec;
  /** The spec's ports with published ports assigned. */
  ports: PortConfig[];
  virtualIps: VirtualIp[];
}

export interface UpdateStatus {
  state: UpdateState;
  startedAt: string;
  completedAt: string;
  message: string;
  /** The rollback was the failure action of an update, not one someone asked for. */
  failedUpdate?: boolean;
}

export interface Service extends Meta {
  spec: ServiceSpec;
  previousSpec?: ServiceSpec | null;
  endpoint: ServiceEndpoint;
  updateStatus: UpdateStatus;
  /** Bumped when the task template changes: tasks of an older one get replaced. */
  specVersion: number;
}

export interface TaskStatus {
  state: TaskState;
  timestamp: string;
  message: string;
  err: string;
  health: TaskHealth;
}

export interface NetworkAttachment {
  networkId: string;
  /** CIDR */
  addresses: string[];
}

export interface Task extends Meta {
  serviceId: string;
  serviceName: string;
  /** 0 for global services, whose tasks are keyed by node. */
  slot: number;
  nodeId: string;
  specVersion: number;
  spec: TaskSpec;
  desiredState: DesiredState;
  status: TaskStatus;
  networks: NetworkAttachment[];
  /** Being stopped, and no agent balances new connections to it any more: it may stop now. */
  drained?: boolean;
  /** Its service's host-mode published ports when it was made (absent: none). */
  hostPorts?: PortConfig[];
}

export type ObjectKind = "node" | "network" | "service" | "task";

export interface ObjectByKind {
  node: Node;
  network: Network;
  service: Service;
  task: Task;
}

/** A task's name, as Docker's: <service>.<slot>, or <service>.<node ID> for a global service's. */
export const taskName = (t: Pick<Task, "serviceName" | "slot" | "nodeId">): string => `${t.serviceName}.${t.slot || t.nodeId}`;

export const serviceMode = (spec: ServiceSpec): "replicated" | "global" =>
  spec.global ? "global" : "replicated";
