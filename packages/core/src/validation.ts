// Turning user input into a valid spec, or an error a person can act on.
// Every function here either returns a complete, normalized spec or throws
// VipmeshError("invalid_argument") naming the field and what to do.

import { VXLAN_UDP_PORT } from "./allocators.ts";
import { canonicalCapability, DEFAULT_PIDS_LIMIT } from "./confinement.ts";
import { parseConstraint } from "./constraints.ts";
import { taskCommand } from "./task-command.ts";
import { invalid } from "./errors.ts";
import { cidrsOverlap, formatCidr, parseCidr } from "./ipv4.ts";
import {
  type EndpointSpec,
  type HealthCheck,
  type LbAffinity,
  LB_SCHEDULER_NAMES,
  type NetworkSpec,
  type NodeSpec,
  type PortConfig,
  type NetworkAttachmentConfig,
  RESTART_CONDITIONS,
  type ResourceLimits,
  type Resources,
  type RestartPolicy,
  type ServiceSpec,
  type TaskSpec,
  type UpdateConfig,
} from "./types.ts";

/** Docker's rule for service and network names (stack objects are <stack>_<name>), at most 63 characters as a DNS label. */
const OBJECT_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/;
/** A host name as RFC 1123 has it. */
const HOSTNAME = /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;
const ENV_KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,252})?$/;

export const PROTOCOLS = ["tcp", "udp", "sctp"] as const;
export const PUBLISH_MODES = ["ingress", "host"] as const;
export const PROXY_PROTOCOLS = ["v1", "v2"] as const;
export const ENDPOINT_MODES = ["vip", "dnsrr"] as const;
/**
 * What some dataplane can honour; "" leaves the choice to the dataplane.
 * Whether every node's dataplane honours a spec is the manager's check (dataplanes.ts).
 */
export const LB_SCHEDULERS = ["", ...LB_SCHEDULER_NAMES] as const;
export const LB_AFFINITIES = ["none", "client-ip"] as const satisfies readonly LbAffinity[];
/** kube-proxy's and IPVS persistence's default: 3 h. */
export const DEFAULT_LB_AFFINITY_TIMEOUT_S = 10_800;
/** kube-proxy's limit: a day. */
export const MAX_LB_AFFINITY_TIMEOUT_S = 86_400;
export const FAILURE_ACTIONS = ["pause", "rollback", "continue"] as const;
export const UPDATE_ORDERS = ["stop-first", "start-first"] as const;
export const AVAILABILITIES = ["active", "drain"] as const;
export const MAX_REPLICAS = 10_000;

/** Docker's own floor for --limit-memory: below it a task cannot even start. */
export const MIN_MEMORY_LIMIT_BYTES = 6 * 1024 ** 2;
/** A ceiling that catches a unit typed wrong (1t for 1g) rather than any real machine's size. */
export const MAX_MEMORY_LIMIT_BYTES = 1024 ** 4;
/** 0.01 CPU, Docker's minimum: a CFS quota of 1 ms per 100 ms period. */
export const MIN_NANO_CPUS = 10_000_000;
export const MAX_NANO_CPUS = 1024 * 1_000_000_000;
/** The kernel's PID_MAX_LIMIT on 64-bit: no pids.max above it means anything. */
export const MAX_PIDS_LIMIT = 4_194_304;
/** A user name (useradd's default rule, with Samba's trailing $) and a group name; up to MAX_USER_NAME each. */
const USER_NAME = /^[a-z_][a-z0-9_-]*[$]?$/;
const GROUP_NAME = /^[a-z_][a-z0-9_-]*$/;
const MAX_USER_NAME = 32;
/** The highest UID or GID: (uid_t)-1 means "no change" to the kernel, so it is not one. */
const MAX_ID = 2 ** 32 - 2;

export const DEFAULT_UPDATE_CONFIG: UpdateConfig = {
  parallelism: 1,
  delayMs: 0,
  failureAction: "pause",
  monitorMs: 5000,
  order: "stop-first",
};

type Loose<T> = { [K in keyof T]?: unknown };

export function validateName(what: string, name: unknown): string {
  if (typeof name !== "string" || name === "") throw invalid(`${what} name is required`);
  if (!OBJECT_NAME.test(name)) {
    throw invalid(
      `${what} name "${name}" is not valid: use 1-63 letters, digits, '_', '.' and '-', starting with a letter or digit (Docker's rule)`,
    );
  }
  return name;
}

function oneOf<T extends string>(field: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined || value === null || value === "") return fallback;
  if (typeof value === "string" && (allowed as readonly string[]).includes(value)) return value as T;
  throw invalid(`${field}: "${String(value)}" is not one of ${allowed.filter((a) => a !== "").join(", ")}`);
}

function integer(field: string, value: unknown, min: number, max: number, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  const n = typeof value === "string" && value !== "" ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < min || n > max) {
    throw invalid(`${field}: ${String(value)} is not a whole number in ${min}-${max}`);
  }
  return n;
}

function labels(field: string, value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== "object" || Array.isArray(value)) throw invalid(`${field} must be a map of strings`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) {
    if (!LABEL_KEY.test(k)) throw invalid(`${field}: label key "${k}" is not valid (letters, digits, . _ / -)`);
    if (typeof v !== "string") throw invalid(`${field}: label "${k}" must have a string value`);
    out[k] = v;
  }
  return out;
}

function strings(field: string, value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((s) => typeof s === "string")) {
    throw invalid(`${field} must be a list of strings`);
  }
  return [...value];
}

export function validateSubnet(subnet: unknown): string {
  if (typeof subnet !== "string" || subnet === "") throw invalid("subnet is required");
  const loose = parseCidr(subnet, false);
  if (!loose) throw invalid(`subnet "${subnet}" is not a valid IPv4 CIDR like 10.0.3.0/24`);
  if (!parseCidr(subnet, true)) {
    const base = [loose.base >>> 24, (loose.base >>> 16) & 255, (loose.base >>> 8) & 255, loose.base & 255];
    throw invalid(`subnet "${subnet}" has host bits set: did you mean ${base.join(".")}/${loose.prefix}?`);
  }
  if (loose.prefix < 8 || loose.prefix > 29) {
    throw invalid(`subnet "${subnet}": the prefix length must be between /8 and /29`);
  }
  const special = NOT_UNICAST.find((r) => cidrsOverlap(r.cidr, loose));
  if (special) {
    throw invalid(
      `subnet "${subnet}" overlaps ${formatCidr(special.cidr)} (${special.what}): an overlay needs unicast, routable addresses; ` +
        `choose a private range such as 10.0.3.0/24 or 172.20.0.0/24`,
    );
  }
  return subnet;
}

/** Ranges whose addresses no task can hold or no packet between nodes can carry (RFC 6890); nodes' advertise addresses too. */
export const NOT_UNICAST = [
  { cidr: "0.0.0.0/8", what: '"this network": no host may hold these addresses' },
  { cidr: "127.0.0.0/8", what: "loopback: these addresses never leave a host" },
  { cidr: "169.254.0.0/16", what: "link-local: no router forwards these addresses" },
  { cidr: "224.0.0.0/4", what: "multicast: no task can hold these addresses" },
  { cidr: "240.0.0.0/4", what: "reserved, and broadcast: hosts drop these addresses" },
].map((r) => ({ ...r, cidr: parseCidr(r.cidr)! }));

export function normalizeNetworkSpec(input: Loose<NetworkSpec> | null | undefined): NetworkSpec {
  if (!input) throw invalid("network spec is required");
  const name = validateName("network", input.name);
  const driver = oneOf("driver", input.driver, ["overlay"] as const, "overlay");
  const ipamIn = Array.isArray(input.ipam) ? (input.ipam as Loose<{ subnet: string; gateway: string }>[]) : [];
  if (ipamIn.length > 1) throw invalid("only one IPAM config (one subnet) per network is supported");
  const ipam = ipamIn
    .filter((c) => c.subnet)
    .map((c) => {
      const subnet = validateSubnet(c.subnet);
      if (c.gateway) throw invalid("a custom gateway is not supported: the gateway is the subnet's first address");
      return { subnet, gateway: "" };
    });
  const options = labels("options", input.options);
  for (const k of Object.keys(options)) {
    if (k !== "encrypted") throw invalid(`network option "${k}" is unknown; supported: encrypted`);
  }
  return {
    name,
    driver,
    labels: labels("labels", input.labels),
    options,
    ipam,
    ingress: input.ingress === true,
  };
}

export function normalizePort(input: Loose<PortConfig>, field: string): PortConfig {
  const port: PortConfig = {
    protocol: oneOf(`${field}.protocol`, input.protocol, PROTOCOLS, "tcp"),
    targetPort: integer(`${field}.targetPort`, input.targetPort ?? 0, 1, 65535, 0),
    publishedPort: integer(`${field}.publishedPort`, input.publishedPort, 0, 65535, 0),
    publishMode: oneOf(`${field}.publishMode`, input.publishMode, PUBLISH_MODES, "ingress"),
  };
  if (port.protocol === "udp" && port.publishedPort === VXLAN_UDP_PORT) {
    throw invalid(`${field}: published port ${port.publishedPort}/udp carries the overlay (VXLAN) on every node; publish another port`);
  }
  if (port.publishMode === "host" && port.publishedPort === 0) {
    throw invalid(`${field}: mode=host needs a published port (published=P,target=${port.targetPort},mode=host)`);
  }
  if (input.proxyProtocol === undefined || input.proxyProtocol === "") return port;
  // for TCP through the mesh: host mode keeps the client's address without one
  if (port.protocol !== "tcp" || port.publishMode !== "ingress") {
    throw invalid(`${field}: a PROXY protocol header is for TCP ports published through the routing mesh (host mode keeps the client's address without one)`);
  }
  return { ...port, proxyProtocol: oneOf(`${field}.proxyProtocol`, input.proxyProtocol, PROXY_PROTOCOLS, "v1") };
}

function normalizeEndpointSpec(input: Loose<EndpointSpec> | null | undefined): EndpointSpec {
  const mode = oneOf("endpoint mode", input?.mode, ENDPOINT_MODES, "vip");
  const rawPorts = Array.isArray(input?.ports) ? (input.ports as Loose<PortConfig>[]) : [];
  const ports = rawPorts.map((p, i) => normalizePort(p, `port ${i + 1}`));
  const seen = new Set<string>();
  for (const p of ports) {
    if (mode === "dnsrr" && p.publishMode === "ingress") {
      throw invalid(
        `port ${p.targetPort}/${p.protocol}: endpoint mode dnsrr cannot publish through the routing mesh ` +
          `(it needs a VIP); use --publish mode=host or --endpoint-mode vip`,
      );
    }
    // a port is published one way: the routing mesh takes it on every node, host mode included
    if (p.publishedPort !== 0) {
      const k = `${p.protocol}/${p.publishedPort}`;
      if (seen.has(k)) {
        throw invalid(
          `published port ${p.publishedPort}/${p.protocol} is given twice: publish it once, through the routing mesh or in host mode ` +
            "(in an update, --publish-rm TARGET drops the other)",
        );
      }
      seen.add(k);
    }
  }
  const lbScheduler = oneOf("lb scheduler", input?.lbScheduler, LB_SCHEDULERS, "");
  const lbWeights: Record<string, number> = {};
  for (const [slot, weight] of Object.entries((input?.lbWeights ?? {}) as Record<string, unknown>)) {
    if (!/^[1-9]\d*$/.test(slot)) throw invalid(`lb weight: "${slot}" is not a slot number (1, 2, …)`);
    lbWeights[slot] = integer(`lb weight of slot ${slot}`, weight, 0, 65535, 1);
  }
  const lbAffinity = oneOf("lb affinity", input?.lbAffinity, LB_AFFINITIES, "none");
  const lbAffinityTimeoutS = affinityTimeout(lbAffinity, input?.lbAffinityTimeoutS);
  return { mode, ports, lbScheduler, lbWeights, lbAffinity, lbAffinityTimeoutS };
}

/** Seconds: the default for 0 with client-ip; none has no timeout, and a timeout without affinity is a mistake to say. */
function affinityTimeout(affinity: LbAffinity, value: unknown): number {
  const given = value === undefined || value === null || value === "" ? 0 : typeof value === "string" ? Number(value) : value;
  const max = MAX_LB_AFFINITY_TIMEOUT_S;
  if (typeof given !== "number" || !Number.isInteger(given) || given < 0 || given > max) {
    throw invalid(
      `lb affinity timeout: ${String(value)} is not a whole number of seconds in 1-${max}; ` +
        `give e.g. --lb-affinity-timeout ${DEFAULT_LB_AFFINITY_TIMEOUT_S} (3 h, the default)`,
    );
  }
  if (affinity === "none") {
    if (given !== 0) {
      throw invalid(`lb affinity timeout ${given}s needs lb affinity client-ip: add --lb-affinity client-ip, or drop the timeout`);
    }
    return 0;
  }
  return given === 0 ? DEFAULT_LB_AFFINITY_TIMEOUT_S : given;
}

function normalizeUpdateConfig(field: string, input: Loose<UpdateConfig> | null | undefined): UpdateConfig {
  const d = DEFAULT_UPDATE_CONFIG;
  if (!input) return { ...d };
  return {
    parallelism: integer(`${field}.parallelism`, input.parallelism, 0, MAX_REPLICAS, d.parallelism),
    delayMs: integer(`${field}.delay`, input.delayMs, 0, 86_400_000, d.delayMs),
    failureAction: oneOf(`${field}.failureAction`, input.failureAction, FAILURE_ACTIONS, d.failureAction),
    monitorMs: integer(`${field}.monitor`, input.monitorMs || d.monitorMs, 0, 86_400_000, d.monitorMs),
    order: oneOf(`${field}.order`, input.order, UPDATE_ORDERS, d.order),
  };
}

function normalizeHealthCheck(input: Loose<HealthCheck> | null | undefined): HealthCheck | null {
  const test = strings("healthcheck.test", input?.test);
  if (test.length === 0) return null;
  return {
    test,
    intervalMs: integer("healthcheck.interval", input?.intervalMs || 30_000, 100, 86_400_000, 30_000),
    timeoutMs: integer("healthcheck.timeout", input?.timeoutMs || 30_000, 100, 86_400_000, 30_000),
    retries: integer("healthcheck.retries", input?.retries || 3, 1, 1000, 3),
    startPeriodMs: integer("healthcheck.startPeriod", input?.startPeriodMs, 0, 86_400_000, 0),
  };
}

/** `--user`: UID[:GID], or NAME[:GROUP] where the group may be a GID; "" = root, left out of the spec. */
export function validateUser(value: unknown): string {
  if (value === undefined || value === null || value === "") return "";
  const text = typeof value === "string" ? value : String(value);
  const parts = text.split(":");
  const [user = "", group] = parts;
  const id = (s: string) => /^\d{1,10}$/.test(s) && Number(s) <= MAX_ID;
  const name = (s: string, re: RegExp) => s.length <= MAX_USER_NAME && re.test(s);
  const ok =
    typeof value === "string" &&
    parts.length <= 2 &&
    (id(user) ? group === undefined || id(group) : name(user, USER_NAME) && (group === undefined || id(group) || name(group, GROUP_NAME)));
  if (!ok) {
    throw invalid(
      `user "${text}" is not valid: give UID[:GID] (e.g. 1000:1000, ids up to ${MAX_ID}) or NAME[:GROUP] (e.g. nobody:nogroup), ` +
        `names of up to ${MAX_USER_NAME} lowercase letters, digits, _ and -, starting with a letter or _`,
    );
  }
  return text;
}

/**
 * `--cap-add`/`--cap-drop`: every name known (canonicalCapability), stored as
 * CAP_X or ALL, sorted and once each; a list with ALL is just ALL, and a
 * capability both added and dropped is added (Docker's precedence).
 */
function normalizeCapabilities(addIn: unknown, dropIn: unknown): { add: string[]; drop: string[] } {
  const canonical = (flag: string, value: unknown): string[] => {
    const names = new Set<string>();
    for (const name of strings(flag, value)) {
      const cap = canonicalCapability(name);
      if (!cap) {
        throw invalid(
          `${flag}: "${name}" is not a Linux capability: give a name from capabilities(7) such as NET_ADMIN ` +
            "or CAP_NET_ADMIN (either case), or ALL",
        );
      }
      names.add(cap);
    }
    return names.has("ALL") ? ["ALL"] : [...names].sort();
  };
  const add = canonical("cap-add", addIn);
  return { add, drop: canonical("cap-drop", dropIn).filter((c) => !add.includes(c)) };
}

/** How each limit is told and shown, for its message. */
interface LimitRule {
  what: string;
  flag: string;
  min: number;
  /** Why the least is what it is. */
  floor: string;
  max: number;
  show: (n: number) => string;
  /** What 0 means. */
  zero: string;
}

const LIMIT_RULES: Record<keyof ResourceLimits, LimitRule> = {
  nanoCpus: {
    what: "cpu limit",
    flag: "--limit-cpu",
    min: MIN_NANO_CPUS,
    floor: "Docker's minimum: 1 ms of CPU time per 100 ms",
    max: MAX_NANO_CPUS,
    show: (n) => `${n / 1e9} CPUs`,
    zero: "no limit",
  },
  memoryBytes: {
    what: "memory limit",
    flag: "--limit-memory",
    min: MIN_MEMORY_LIMIT_BYTES,
    floor: "Docker's minimum",
    max: MAX_MEMORY_LIMIT_BYTES,
    show: formatBytes,
    zero: "no limit",
  },
  pids: {
    what: "pids limit",
    flag: "--limit-pids",
    min: 1,
    floor: "one process",
    max: MAX_PIDS_LIMIT,
    show: (n) => String(n),
    zero: `the default, ${DEFAULT_PIDS_LIMIT}`,
  },
};

/** Bytes as people write them in messages: 6 MiB, 1.5 GiB, 1000 bytes. */
export function formatBytes(n: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"] as const;
  let i = 0;
  while (i < units.length - 1 && Math.abs(n) >= 1024 ** (i + 1)) i++;
  const v = n / 1024 ** i;
  return i === 0 ? `${n} bytes` : `${Number(v.toFixed(2))} ${units[i]}`;
}

/** One limit: 0 (or absent) leaves it out, else a whole number in its range. */
function limit(field: keyof ResourceLimits, value: unknown): number {
  const r = LIMIT_RULES[field];
  const n = value === undefined || value === null || value === "" ? 0 : typeof value === "string" ? Number(value) : value;
  const range = `give 0 (${r.zero}) or ${r.show(r.min)} to ${r.show(r.max)} (${r.flag})`;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0) throw invalid(`${r.what}: ${String(value)} is not a whole number: ${range}`);
  if (n !== 0 && n < r.min) throw invalid(`${r.what}: ${r.show(n)} is below ${r.show(r.min)} (${r.floor}): ${range}`);
  if (n > r.max) throw invalid(`${r.what}: ${r.show(n)} is above ${r.show(r.max)}, the most a task may be given: ${range}`);
  return n;
}

/** How each reservation is told and shown, for its message; its ceiling is its limit's. */
const RESERVATION_RULES: Record<keyof Resources, { what: string; flag: string; limit: keyof ResourceLimits }> = {
  nanoCpus: { what: "cpu reservation", flag: "--reserve-cpu", limit: "nanoCpus" },
  memoryBytes: { what: "memory reservation", flag: "--reserve-memory", limit: "memoryBytes" },
};

/** One reservation: 0 (or absent) reserves nothing, else a whole number up to its limit's ceiling. */
function reservation(field: keyof Resources, value: unknown): number {
  const r = RESERVATION_RULES[field];
  const show = LIMIT_RULES[r.limit].show;
  const max = LIMIT_RULES[r.limit].max;
  const n = value === undefined || value === null || value === "" ? 0 : typeof value === "string" ? Number(value) : value;
  const range = `give 0 (nothing reserved) up to ${show(max)} (${r.flag})`;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0) throw invalid(`${r.what}: ${String(value)} is not a whole number: ${range}`);
  if (n > max) throw invalid(`${r.what}: ${show(n)} is above ${show(max)}, the most a task may reserve: ${range}`);
  return n;
}

/**
 * The limits and reservations that are set (0s left out), or null for none: a
 * spec without them stays as it was stored. A reservation above the limit of
 * the same resource could never be used, and is refused (as Docker does).
 */
function normalizeResources(input: unknown): TaskSpec["resources"] {
  const given = (input ?? {}) as { limits?: unknown; reservations?: unknown };
  const givenLimits = (given.limits ?? {}) as Loose<ResourceLimits>;
  const givenReservations = (given.reservations ?? {}) as Loose<Resources>;
  const limits: ResourceLimits = {};
  for (const field of Object.keys(LIMIT_RULES) as (keyof ResourceLimits)[]) {
    const n = limit(field, givenLimits[field]);
    if (n !== 0) limits[field] = n;
  }
  const reservations: Resources = {};
  for (const field of Object.keys(RESERVATION_RULES) as (keyof Resources)[]) {
    const n = reservation(field, givenReservations[field]);
    if (n === 0) continue;
    const r = RESERVATION_RULES[field];
    const cap = limits[r.limit];
    if (cap !== undefined && n > cap) {
      const show = LIMIT_RULES[r.limit].show;
      throw invalid(`${r.what}: ${show(n)} is above the ${LIMIT_RULES[r.limit].what} of ${show(cap)}: a task cannot use more than its limit; lower ${r.flag} or raise ${LIMIT_RULES[r.limit].flag}`);
    }
    reservations[field] = n;
  }
  const hasReservations = Object.keys(reservations).length > 0;
  if (!hasReservations && Object.keys(limits).length === 0) return null;
  return { limits, ...(hasReservations ? { reservations } : {}) };
}

/** Docker's Dir: an absolute path the kernel takes (PATH_MAX), or "" for the image's. */
const MAX_DIR_LENGTH = 4096;

function validateDir(value: unknown): string {
  if (value === undefined || value === null || value === "") return "";
  if (typeof value !== "string") throw invalid("workdir must be a string: an absolute path such as /app");
  if (value.includes("\0")) throw invalid("workdir must not contain a NUL character");
  if (!value.startsWith("/")) throw invalid(`workdir "${value}" is not an absolute path: give one starting with /, such as /app (--workdir)`);
  if (value.length > MAX_DIR_LENGTH) throw invalid(`workdir is ${value.length} characters long, above the kernel's ${MAX_DIR_LENGTH} (PATH_MAX)`);
  return value;
}

/** Docker's RestartPolicy; absent or null stays absent (the default: any, the manager's delay, unlimited). */
/** Docker's default for what a given policy leaves out (a spec without one keeps the manager's own rule: restart.ts). */
export const DEFAULT_RESTART_POLICY: RestartPolicy = { condition: "any", delayMs: 5000, maxAttempts: 0, windowMs: 0 };

function normalizeRestartPolicy(input: Loose<RestartPolicy> | null | undefined): RestartPolicy | null {
  if (input === undefined || input === null) return null;
  if (typeof input !== "object" || Array.isArray(input)) throw invalid("restart policy must be an object");
  const d = DEFAULT_RESTART_POLICY;
  return {
    condition: oneOf("restart policy condition", input.condition, RESTART_CONDITIONS, d.condition),
    delayMs: integer("restart policy delay (ms)", input.delayMs, 0, 86_400_000, d.delayMs),
    maxAttempts: integer("restart policy max attempts", input.maxAttempts, 0, 1_000_000, d.maxAttempts),
    windowMs: integer("restart policy window (ms)", input.windowMs, 0, 86_400_000 * 7, d.windowMs),
  };
}

/** A network attachment: its target as given (the manager resolves it) and its aliases, valid names once each. */
function normalizeAttachment(n: Loose<NetworkAttachmentConfig>, i: number): NetworkAttachmentConfig {
  if (typeof n !== "object" || n === null) throw invalid(`network ${i + 1} must be an object with a target`);
  if (typeof n.target !== "string" || n.target === "") throw invalid(`network ${i + 1}: target is required`);
  const aliases = [...new Set(strings(`network ${n.target}: aliases`, n.aliases))];
  for (const a of aliases) validateName(`network ${n.target}: alias`, a);
  return { target: n.target, ...(aliases.length > 0 ? { aliases } : {}) };
}

/** Validates a service spec and fills every default. Network targets stay as given. */
export function normalizeServiceSpec(input: Loose<ServiceSpec> | null | undefined): ServiceSpec {
  if (!input) throw invalid("service spec is required");
  const ann = (input.annotations ?? {}) as Loose<ServiceSpec["annotations"]>;
  const name = validateName("service", ann.name);
  const tt = (input.taskTemplate ?? {}) as Loose<ServiceSpec["taskTemplate"]>;
  const container = (tt.container ?? {}) as Loose<ServiceSpec["taskTemplate"]["container"]>;
  const image = container.image === undefined || container.image === null ? "" : container.image;
  if (typeof image !== "string" || image.length > 512 || /\s/.test(image)) throw invalid(`image "${String(image)}" is not an image reference`);
  const command = strings("command", container.command);
  if (command.length === 0 && !image) throw invalid("a command is required, or an image that runs one: give the command after `--`, e.g. -- vipmesh whoami");
  const args = strings("args", container.args);
  const run = taskCommand({ image, command, args, env: [] });
  if ("argv" in run && run.argv[0] === "") throw invalid("the command's first word, the program to run, is empty");
  const hostname = container.hostname === undefined || container.hostname === null ? "" : container.hostname;
  if (hostname !== "" && (typeof hostname !== "string" || hostname.length > 64 || !HOSTNAME.test(hostname))) {
    throw invalid(`hostname "${String(hostname)}" is not a valid host name (up to 64 letters, digits, '-' and dots: the kernel's limit)`);
  }
  const dir = validateDir(container.dir);
  const containerLabels = labels("container labels", container.labels);
  const restartPolicy = normalizeRestartPolicy(tt.restartPolicy as Loose<RestartPolicy>);
  const env = strings("env", container.env);
  for (const e of env) {
    const k = e.split("=")[0]!;
    if (!e.includes("=") || !ENV_KEY.test(k)) throw invalid(`env "${e}" must look like KEY=value`);
  }
  const user = validateUser(container.user);
  const caps = normalizeCapabilities(container.capabilityAdd, container.capabilityDrop);
  const resources = normalizeResources(tt.resources);
  const placement = (tt.placement ?? {}) as Loose<ServiceSpec["taskTemplate"]["placement"]>;
  const constraints = strings("constraints", placement.constraints);
  constraints.forEach(parseConstraint);

  if (input.replicated && input.global) throw invalid("a service is either replicated or global, not both");
  const replicated = input.global
    ? null
    : {
        replicas: integer(
          "replicas",
          (input.replicated as { replicas?: unknown } | null | undefined)?.replicas,
          0,
          MAX_REPLICAS,
          1,
        ),
      };

  const rawNetworks = Array.isArray(input.networks) ? (input.networks as Loose<NetworkAttachmentConfig>[]) : [];
  const networks = rawNetworks.map(normalizeAttachment);

  return {
    annotations: { name, labels: labels("labels", ann.labels) },
    taskTemplate: {
      // what confines a task is left out when unset, so specs stored before it existed stay equal (no rolling update)
      container: {
        ...(image ? { image } : {}),
        command,
        ...(args.length > 0 ? { args } : {}),
        ...(hostname ? { hostname } : {}),
        ...(dir ? { dir } : {}),
        ...(Object.keys(containerLabels).length > 0 ? { labels: containerLabels } : {}),
        env,
        healthcheck: normalizeHealthCheck(container.healthcheck as Loose<HealthCheck>),
        ...(user ? { user } : {}),
        ...(caps.add.length > 0 ? { capabilityAdd: caps.add } : {}),
        ...(caps.drop.length > 0 ? { capabilityDrop: caps.drop } : {}),
      },
      ...(resources ? { resources } : {}),
      placement: { constraints },
      forceUpdate: integer("forceUpdate", tt.forceUpdate, 0, 2 ** 32 - 1, 0),
      ...(restartPolicy ? { restartPolicy } : {}),
    },
    ...(replicated ? { replicated } : { global: {} }),
    networks,
    endpointSpec: normalizeEndpointSpec(input.endpointSpec as Loose<EndpointSpec>),
    updateConfig: normalizeUpdateConfig("update", input.updateConfig as Loose<UpdateConfig>),
    rollbackConfig: normalizeUpdateConfig("rollback", input.rollbackConfig as Loose<UpdateConfig>),
  };
}

export function normalizeNodeSpec(input: Loose<NodeSpec> | null | undefined, current: NodeSpec): NodeSpec {
  if (!input) throw invalid("node spec is required");
  return {
    labels: input.labels === undefined ? current.labels : normalizeNodeLabels("labels", input.labels),
    availability: oneOf("availability", input.availability, AVAILABILITIES, current.availability),
  };
}

/**
 * Each of a node's label maps (the admin's spec labels, its agent's engine
 * labels): they travel in every node list and watch snapshot, so a node
 * cannot make those large. Generous for real labels (zone, rack, disk type).
 */
export const NODE_LABEL_LIMITS = { count: 64, keyBytes: 128, valueBytes: 4096, totalBytes: 16 * 1024 } as const;

/** A node's labels, valid and within NODE_LABEL_LIMITS; `field` names them in messages. */
export function normalizeNodeLabels(field: string, value: unknown): Record<string, string> {
  const out = labels(field, value);
  const { count, keyBytes, valueBytes, totalBytes } = NODE_LABEL_LIMITS;
  const entries = Object.entries(out);
  if (entries.length > count) throw invalid(`${field}: ${entries.length} labels; a node may have at most ${count}`);
  const utf8 = new TextEncoder();
  let total = 0;
  for (const [k, v] of entries) {
    if (k.length > keyBytes) throw invalid(`${field}: label key "${k.slice(0, 32)}…" is ${k.length} bytes; at most ${keyBytes}`);
    const size = utf8.encode(v).length;
    if (size > valueBytes) throw invalid(`${field}: label "${k}" has a value of ${formatBytes(size)}; at most ${formatBytes(valueBytes)}`);
    total += k.length + size;
  }
  if (total > totalBytes) throw invalid(`${field}: keys and values come to ${formatBytes(total)}; at most ${formatBytes(totalBytes)} in all`);
  return out;
}
