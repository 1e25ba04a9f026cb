// Tasks and task templates in Docker's JSON shapes, both ways: what `docker
// inspect`/`service ps` read, and Docker's TaskTemplate into vipmesh's TaskSpec.
// Also the few readers of Docker JSON the service mapping shares. Pure.

import { DEFAULT_RESTART_POLICY, type HealthCheck, type PortConfig, type RestartPolicy, type Task, type TaskSpec, invalid } from "@vipmesh/core";
import { ARCHITECTURE, GOARCH } from "./platform.ts";

/**
 * What a mapping reads of an object: its domain shape with every field
 * optional or null and its enums widened to strings, so a domain object and
 * the CLI's decoded wire object (@vipmesh/api's wire types) both fit.
 */
export type Loose<T> = T extends string
  ? string
  : T extends readonly (infer U)[]
    ? readonly Loose<U>[]
    : T extends object
      ? { readonly [K in keyof T]?: Loose<T[K]> | null }
      : T;

/** Docker gives durations in nanoseconds. */
export const nanoseconds = (ms: number): number => ms * 1_000_000;

/** Go's zero time: what Docker shows for a time never set (a "" would not decode in the docker CLI). */
export const ZERO_TIME = "0001-01-01T00:00:00Z";
export const timeJson = (t: string | null | undefined): string => t || ZERO_TIME;

// ---- vipmesh → Docker ---------------------------------------------------------

export function portJson(p: Loose<PortConfig>) {
  return {
    Protocol: p.protocol ?? "tcp",
    TargetPort: p.targetPort ?? 0,
    // omitted when 0, like docker's omitempty: a spec port still to be assigned
    ...(p.publishedPort ? { PublishedPort: p.publishedPort } : {}),
    PublishMode: p.publishMode || "ingress",
    ...(p.proxyProtocol ? { ProxyProtocol: p.proxyProtocol } : {}),
  };
}

/** Docker's Resources.Limits, with only the limits that are set (omitempty): undefined for none. */
function limitsJson(l: Loose<TaskSpec["resources"]> | undefined) {
  const limits = {
    ...(l?.limits?.nanoCpus ? { NanoCPUs: l.limits.nanoCpus } : {}),
    ...(l?.limits?.memoryBytes ? { MemoryBytes: l.limits.memoryBytes } : {}),
    ...(l?.limits?.pids ? { Pids: l.limits.pids } : {}),
  };
  return Object.keys(limits).length > 0 ? limits : undefined;
}

/** Docker's Resources.Reservations (what placement counts against the nodes' offer), only those set: undefined for none. */
function reservationsJson(r: Loose<TaskSpec["resources"]> | undefined) {
  const reservations = {
    ...(r?.reservations?.nanoCpus ? { NanoCPUs: r.reservations.nanoCpus } : {}),
    ...(r?.reservations?.memoryBytes ? { MemoryBytes: r.reservations.memoryBytes } : {}),
  };
  return Object.keys(reservations).length > 0 ? reservations : undefined;
}

function healthcheckJson(check: Loose<HealthCheck> | null | undefined) {
  if (!check?.test || check.test.length === 0) return undefined;
  return {
    // vipmesh runs an argv: Docker's CMD form (CMD-SHELL was stored as /bin/sh -c)
    Test: ["CMD", ...check.test],
    Interval: nanoseconds(check.intervalMs ?? 0),
    Timeout: nanoseconds(check.timeoutMs ?? 0),
    Retries: check.retries ?? 0,
    StartPeriod: nanoseconds(check.startPeriodMs ?? 0),
  };
}

function restartPolicyJson(r: Loose<RestartPolicy> | null | undefined) {
  if (!r) return undefined;
  return {
    Condition: r.condition || DEFAULT_RESTART_POLICY.condition,
    Delay: nanoseconds(r.delayMs ?? 0),
    MaxAttempts: r.maxAttempts ?? 0,
    Window: nanoseconds(r.windowMs ?? 0),
  };
}

/** `insertDefaults`: fill what Docker fills for ?insertDefaults=true (the restart policy). */
export function taskSpecJson(t: Loose<TaskSpec> | null | undefined, options: { insertDefaults?: boolean } = {}) {
  const c = t?.container;
  const check = healthcheckJson(c?.healthcheck);
  const limits = limitsJson(t?.resources);
  const reservations = reservationsJson(t?.resources);
  const restart = restartPolicyJson(t?.restartPolicy ?? (options.insertDefaults ? DEFAULT_RESTART_POLICY : null));
  return {
    ContainerSpec: {
      ...(c?.image ? { Image: c.image } : {}),
      ...(c?.labels && Object.keys(c.labels).length > 0 ? { Labels: c.labels } : {}),
      Command: c?.command ?? [],
      ...(c?.args?.length ? { Args: c.args } : {}),
      ...(c?.hostname ? { Hostname: c.hostname } : {}),
      ...(c?.dir ? { Dir: c.dir } : {}),
      Env: c?.env ?? [],
      ...(c?.user ? { User: c.user } : {}),
      ...(check ? { Healthcheck: check } : {}),
      ...(c?.capabilityAdd?.length ? { CapabilityAdd: c.capabilityAdd } : {}),
      ...(c?.capabilityDrop?.length ? { CapabilityDrop: c.capabilityDrop } : {}),
    },
    ...(limits || reservations ? { Resources: { ...(limits ? { Limits: limits } : {}), ...(reservations ? { Reservations: reservations } : {}) } } : {}),
    ...(restart ? { RestartPolicy: restart } : {}),
    Placement: { Constraints: t?.placement?.constraints ?? [] },
    ForceUpdate: t?.forceUpdate ?? 0,
  };
}

/** `networkNames` (ID → name) fills in each attachment's network name where known. */
export function taskJson(t: Loose<Task>, networkNames: ReadonlyMap<string, string> = new Map()) {
  const health = t.status?.health;
  const hostPorts = t.hostPorts ?? [];
  return {
    ID: t.id ?? "",
    Version: { Index: t.version ?? 0 },
    CreatedAt: timeJson(t.createdAt),
    UpdatedAt: timeJson(t.updatedAt),
    Spec: taskSpecJson(t.spec),
    ServiceID: t.serviceId ?? "",
    Slot: t.slot ?? 0,
    NodeID: t.nodeId ?? "",
    Status: {
      Timestamp: timeJson(t.status?.timestamp),
      State: t.status?.state || "new",
      Message: t.status?.message ?? "",
      Err: t.status?.err ?? "",
      ...(health ? { Health: health } : {}),
      // host-mode ports: the PORTS column of `docker service ps`
      ...(hostPorts.length > 0 ? { PortStatus: { Ports: hostPorts.map(portJson) } } : {}),
    },
    DesiredState: t.desiredState ?? "",
    NetworksAttachments: (t.networks ?? []).map((a) => {
      const name = networkNames.get(a.networkId ?? "");
      return {
        Network: { ID: a.networkId ?? "", ...(name ? { Name: name, Spec: { Name: name } } : {}) },
        Addresses: a.addresses ?? [],
      };
    }),
  };
}

// ---- reading Docker's JSON ----------------------------------------------------
// Each reader takes the field's Docker path for its message; absent and null
// are undefined (Docker's omitempty), a wrong type is a 400 naming the field.

export type Json = Record<string, unknown>;

export function object(field: string, v: unknown): Json | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v)) throw invalid(`${field} must be an object`);
  return v as Json;
}

export function string(field: string, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw invalid(`${field} must be a string`);
  return v;
}

export function strings(field: string, v: unknown): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) throw invalid(`${field} must be a list of strings`);
  return v as string[];
}

export function integer(field: string, v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isInteger(v)) throw invalid(`${field} must be a whole number`);
  return v;
}

/** A duration in nanoseconds, as milliseconds; negative is refused here (under 1 ms it would round to 0 and pass the core's range). */
export function duration(field: string, v: unknown): number | undefined {
  const ns = integer(`${field} (nanoseconds)`, v);
  if (ns !== undefined && ns < 0) throw invalid(`${field} must not be negative`);
  return ns === undefined ? undefined : Math.round(ns / 1_000_000);
}

export function stringMap(field: string, v: unknown): Record<string, string> | undefined {
  const o = object(field, v);
  if (o && Object.values(o).some((s) => typeof s !== "string")) throw invalid(`${field} must map names to strings`);
  return o as Record<string, string> | undefined;
}

export function list(field: string, v: unknown): unknown[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v)) throw invalid(`${field} must be a list`);
  return v;
}

/** Docker's zero value: what a client sends for a setting it leaves alone (null, false, 0, "", and lists or objects of those). */
export function isZero(v: unknown): boolean {
  if (v === undefined || v === null || v === false || v === 0 || v === "") return true;
  if (Array.isArray(v)) return v.length === 0;
  if (typeof v === "object") return Object.values(v).every(isZero);
  return false;
}

/** A Placement.Platforms entry the nodes are: Linux on this architecture (in Go's or uname's name), or any architecture. */
function isNodePlatform(p: unknown): boolean {
  const { OS, Architecture } = (p ?? {}) as { OS?: unknown; Architecture?: unknown };
  return (OS === undefined || OS === "" || OS === "linux") && (!Architecture || Architecture === GOARCH || Architecture === ARCHITECTURE);
}

/** Collects a warning for each field vipmesh does not honour that is set to something else than Docker's default. */
export class Warnings {
  readonly list: string[] = [];
  /** `isDefault` overrides the zero test (StopGracePeriod: 10 s is the default). */
  unsupported(field: string, v: unknown, isDefault: (v: unknown) => boolean = isZero): void {
    if (!isDefault(v)) this.list.push(`${field} is not supported by vipmesh and was ignored`);
  }
}

/** Fields of Docker's ContainerSpec that vipmesh does not honour (read from the same object as those it does). */
const UNSUPPORTED_CONTAINER_FIELDS = [
  "Groups",
  "Privileges",
  "Init",
  "TTY",
  "OpenStdin",
  "ReadOnly",
  "Mounts",
  "StopSignal",
  "DNSConfig",
  "Hosts",
  "Secrets",
  "Configs",
  "Isolation",
  "Sysctls",
  "Ulimits",
  "OomScoreAdj",
  "StopGracePeriod",
] as const;

const DOCKER_STOP_GRACE_NS = 10_000_000_000;

/**
 * What counts as Docker's default where it is not the zero value: what the
 * CLI sends when told nothing (`--isolation default`), and what vipmesh does
 * anyway (it stops a task with SIGTERM, then SIGKILL 10 s later).
 */
const CONTAINER_DEFAULTS: Partial<Record<(typeof UNSUPPORTED_CONTAINER_FIELDS)[number], (v: unknown) => boolean>> = {
  Isolation: (v) => isZero(v) || v === "default",
  StopSignal: (v) => isZero(v) || (typeof v === "string" && ["SIGTERM", "TERM", "15"].includes(v.toUpperCase())),
  StopGracePeriod: (v) => isZero(v) || v === DOCKER_STOP_GRACE_NS,
};

/** Docker's Healthcheck.Test: CMD argv, CMD-SHELL one string, NONE (or nothing) for no check. */
function healthcheckFromDocker(json: Json | undefined): Loose<HealthCheck> | null {
  if (!json) return null;
  const f = "TaskTemplate.ContainerSpec.Healthcheck";
  const test = strings(`${f}.Test`, json.Test) ?? [];
  const [kind, ...rest] = test;
  let argv: string[];
  if (kind === undefined || kind === "NONE") return null;
  if (kind === "CMD" && rest.length > 0) argv = rest;
  else if (kind === "CMD-SHELL" && rest.length === 1) argv = ["/bin/sh", "-c", rest[0]!];
  else throw invalid(`${f}.Test must be ["CMD", arg…], ["CMD-SHELL", "command"] or ["NONE"], not ${JSON.stringify(test)}`);
  return {
    test: argv,
    intervalMs: duration(`${f}.Interval`, json.Interval) ?? 0,
    timeoutMs: duration(`${f}.Timeout`, json.Timeout) ?? 0,
    retries: integer(`${f}.Retries`, json.Retries) ?? 0,
    startPeriodMs: duration(`${f}.StartPeriod`, json.StartPeriod) ?? 0,
  };
}

function restartPolicyFromDocker(json: Json | undefined): Loose<RestartPolicy> | null {
  if (!json) return null;
  const f = "TaskTemplate.RestartPolicy";
  return {
    // what is left out, the core fills with Docker's defaults
    condition: string(`${f}.Condition`, json.Condition),
    delayMs: duration(`${f}.Delay`, json.Delay),
    maxAttempts: integer(`${f}.MaxAttempts`, json.MaxAttempts),
    windowMs: duration(`${f}.Window`, json.Window),
  };
}

/**
 * Docker's TaskTemplate → vipmesh's TaskSpec, its types checked (values are
 * the core's to judge); what vipmesh does not honour goes into `warnings`.
 * The networks are the service's (serviceSpecFromDocker reads them).
 */
export function taskSpecFromDocker(json: Json | undefined, warnings: Warnings): Loose<TaskSpec> {
  const tt = json ?? {};
  const f = "TaskTemplate";
  const cs = object(`${f}.ContainerSpec`, tt.ContainerSpec) ?? {};
  const c = `${f}.ContainerSpec`;
  for (const name of UNSUPPORTED_CONTAINER_FIELDS) warnings.unsupported(`${c}.${name}`, cs[name], CONTAINER_DEFAULTS[name]);

  const resources = object(`${f}.Resources`, tt.Resources) ?? {};
  const limits = object(`${f}.Resources.Limits`, resources.Limits) ?? {};
  const reservations = object(`${f}.Resources.Reservations`, resources.Reservations) ?? {};
  warnings.unsupported(`${f}.Resources.Reservations.GenericResources`, reservations.GenericResources);
  warnings.unsupported(`${f}.Resources.Limits.GenericResources`, limits.GenericResources);
  const placement = object(`${f}.Placement`, tt.Placement) ?? {};
  for (const name of ["Preferences", "MaxReplicas"]) warnings.unsupported(`${f}.Placement.${name}`, placement[name]);
  // the docker CLI sends the platforms /distribution gave: the nodes' own (linux, this architecture) need no warning
  warnings.unsupported(`${f}.Placement.Platforms`, placement.Platforms, (v) => isZero(v) || (Array.isArray(v) && v.some(isNodePlatform)));
  for (const name of ["LogDriver", "PluginSpec", "NetworkAttachmentSpec"]) warnings.unsupported(`${f}.${name}`, tt[name]);
  warnings.unsupported(`${f}.Runtime`, tt.Runtime, (v) => isZero(v) || v === "container");

  return {
    container: {
      image: string(`${c}.Image`, cs.Image) ?? "",
      labels: stringMap(`${c}.Labels`, cs.Labels) ?? {},
      command: strings(`${c}.Command`, cs.Command) ?? [],
      args: strings(`${c}.Args`, cs.Args) ?? [],
      hostname: string(`${c}.Hostname`, cs.Hostname) ?? "",
      dir: string(`${c}.Dir`, cs.Dir) ?? "",
      env: strings(`${c}.Env`, cs.Env) ?? [],
      user: string(`${c}.User`, cs.User) ?? "",
      capabilityAdd: strings(`${c}.CapabilityAdd`, cs.CapabilityAdd) ?? [],
      capabilityDrop: strings(`${c}.CapabilityDrop`, cs.CapabilityDrop) ?? [],
      healthcheck: healthcheckFromDocker(object(`${c}.Healthcheck`, cs.Healthcheck)),
    },
    resources: {
      limits: {
        nanoCpus: integer(`${f}.Resources.Limits.NanoCPUs`, limits.NanoCPUs) ?? 0,
        memoryBytes: integer(`${f}.Resources.Limits.MemoryBytes`, limits.MemoryBytes) ?? 0,
        pids: integer(`${f}.Resources.Limits.Pids`, limits.Pids) ?? 0,
      },
      reservations: {
        nanoCpus: integer(`${f}.Resources.Reservations.NanoCPUs`, reservations.NanoCPUs) ?? 0,
        memoryBytes: integer(`${f}.Resources.Reservations.MemoryBytes`, reservations.MemoryBytes) ?? 0,
      },
    },
    restartPolicy: restartPolicyFromDocker(object(`${f}.RestartPolicy`, tt.RestartPolicy)),
    placement: { constraints: strings(`${f}.Placement.Constraints`, placement.Constraints) ?? [] },
    forceUpdate: integer(`${f}.ForceUpdate`, tt.ForceUpdate) ?? 0,
  };
}
