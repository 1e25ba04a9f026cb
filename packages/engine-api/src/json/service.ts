// Services in Docker's JSON shapes, both ways: what `docker service inspect`
// (and `vipmesh service inspect`) print, and Docker's ServiceSpec — as the
// docker CLI and `docker stack deploy` send it — into vipmesh's. Pure.

import { type EndpointSpec, type PortConfig, type Service, type ServiceSpec, type UpdateConfig, invalid, normalizePort } from "@vipmesh/core";
import {
  type Json,
  type Loose,
  Warnings,
  duration,
  integer,
  list,
  nanoseconds,
  object,
  portJson,
  string,
  stringMap,
  strings,
  taskSpecFromDocker,
  taskSpecJson,
  timeJson,
} from "./task.ts";

/** The wire's spec names its mode (the oneof's discriminator); a domain spec has only the member. */
type SpecLike = Loose<ServiceSpec> & { readonly mode?: string | null };

export const isGlobalMode = (spec: SpecLike | null | undefined): boolean => (spec?.mode ? spec.mode === "global" : Boolean(spec?.global));

/** Docker's ServiceStatus (`GET /services?status=true`). */
export interface ServiceStatus {
  RunningTasks: number;
  DesiredTasks: number;
  CompletedTasks: number;
}

export interface ServiceJsonOptions {
  /** Fill the defaults Docker fills for ?insertDefaults=true. */
  insertDefaults?: boolean;
  status?: ServiceStatus;
}

// ---- vipmesh → Docker ---------------------------------------------------------

function updateConfigJson(c: Loose<UpdateConfig> | null | undefined) {
  return {
    Parallelism: c?.parallelism ?? 0,
    Delay: nanoseconds(c?.delayMs ?? 0),
    FailureAction: c?.failureAction ?? "",
    Monitor: nanoseconds(c?.monitorMs ?? 0),
    MaxFailureRatio: 0,
    Order: c?.order ?? "",
  };
}

/** Docker's fields, then vipmesh's load-balancing ones (which Docker lacks) where they differ from the default. */
function endpointSpecJson(e: Loose<EndpointSpec> | null | undefined) {
  const weights = e?.lbWeights ?? {};
  const affinity = e?.lbAffinity === "client-ip";
  return {
    Mode: e?.mode ?? "",
    Ports: (e?.ports ?? []).map(portJson),
    ...(e?.lbScheduler ? { LbScheduler: e.lbScheduler } : {}),
    ...(Object.keys(weights).length > 0 ? { LbWeights: weights } : {}),
    ...(affinity ? { LbAffinity: e?.lbAffinity, LbAffinityTimeout: nanoseconds((e?.lbAffinityTimeoutS ?? 0) * 1000) } : {}),
  };
}

function networksJson(spec: SpecLike | null | undefined) {
  return (spec?.networks ?? []).map((n) => ({ Target: n.target ?? "", ...(n.aliases?.length ? { Aliases: n.aliases } : {}) }));
}

export function serviceSpecJson(spec: SpecLike | null | undefined, options: ServiceJsonOptions = {}) {
  const networks = networksJson(spec);
  return {
    Name: spec?.annotations?.name ?? "",
    Labels: spec?.annotations?.labels ?? {},
    // Docker keeps the networks in the task template; the top-level Networks (its deprecated place) stays for vipmesh's users
    TaskTemplate: { ...taskSpecJson(spec?.taskTemplate, options), Networks: networks },
    Mode: isGlobalMode(spec) ? { Global: {} } : { Replicated: { Replicas: spec?.replicated?.replicas ?? 0 } },
    UpdateConfig: updateConfigJson(spec?.updateConfig),
    RollbackConfig: updateConfigJson(spec?.rollbackConfig),
    Networks: networks,
    EndpointSpec: endpointSpecJson(spec?.endpointSpec),
  };
}

/**
 * What a task sees as the peer of a published connection (not in docker's
 * shape: swarm users asked where their clients' addresses went).
 */
export const clientAddressOf = (p: Loose<PortConfig>): string =>
  p.publishMode === "host"
    ? "kept: the task sees the client's own address"
    : p.proxyProtocol
      ? `sent: the task gets it in a PROXY protocol ${p.proxyProtocol} header, on a connection from the ingress sandbox`
      : "replaced: the task sees the ingress sandbox of the node the client reached";

function endpointJson(e: Loose<Service["endpoint"]> | null | undefined) {
  return {
    Spec: endpointSpecJson(e?.spec),
    Ports: (e?.ports ?? []).map((p) => ({ ...portJson(p), ClientAddress: clientAddressOf(p) })),
    VirtualIPs: (e?.virtualIps ?? []).map((v) => ({ NetworkID: v.networkId ?? "", Addr: v.addr ?? "" })),
  };
}

/** Docker's UpdateStatus; its times are optional (a "" would not decode in the docker CLI). */
function updateStatusJson(u: Loose<Service["updateStatus"]>) {
  return {
    State: u.state ?? "",
    ...(u.startedAt ? { StartedAt: u.startedAt } : {}),
    ...(u.completedAt ? { CompletedAt: u.completedAt } : {}),
    Message: u.message ?? "",
  };
}

export function serviceJson(s: Loose<Service> & { readonly spec?: SpecLike | null; readonly previousSpec?: SpecLike | null }, options: ServiceJsonOptions = {}) {
  return {
    ID: s.id ?? "",
    Version: { Index: s.version ?? 0 },
    CreatedAt: timeJson(s.createdAt),
    UpdatedAt: timeJson(s.updatedAt),
    Spec: serviceSpecJson(s.spec, options),
    ...(s.previousSpec ? { PreviousSpec: serviceSpecJson(s.previousSpec) } : {}),
    Endpoint: endpointJson(s.endpoint),
    ...(s.updateStatus?.state ? { UpdateStatus: updateStatusJson(s.updateStatus) } : {}),
    ...(options.status ? { ServiceStatus: options.status } : {}),
  };
}

// ---- Docker → vipmesh ---------------------------------------------------------

function updateConfigFromDocker(field: string, json: Json | undefined, warnings: Warnings): Loose<UpdateConfig> | undefined {
  if (!json) return undefined;
  warnings.unsupported(`${field}.MaxFailureRatio`, json.MaxFailureRatio);
  return {
    parallelism: integer(`${field}.Parallelism`, json.Parallelism) ?? 0,
    delayMs: duration(`${field}.Delay`, json.Delay) ?? 0,
    failureAction: string(`${field}.FailureAction`, json.FailureAction) ?? "",
    monitorMs: duration(`${field}.Monitor`, json.Monitor) ?? 0,
    order: string(`${field}.Order`, json.Order) ?? "",
  };
}

/**
 * A port. `ProxyProtocol` is vipmesh's own: the docker CLI, which reads a
 * service into Go structs and sends them back whole, drops it; absent, the
 * same port's value in `current` (an update's spec before) stays.
 */
function portFromDocker(field: string, v: unknown, warnings: Warnings, current: readonly PortConfig[]): Loose<PortConfig> {
  const p = object(field, v) ?? {};
  warnings.unsupported(`${field}.Name`, p.Name);
  const port = {
    protocol: string(`${field}.Protocol`, p.Protocol) ?? "",
    targetPort: integer(`${field}.TargetPort`, p.TargetPort) ?? 0,
    publishedPort: integer(`${field}.PublishedPort`, p.PublishedPort) ?? 0,
    publishMode: string(`${field}.PublishMode`, p.PublishMode) ?? "",
  };
  const given = string(`${field}.ProxyProtocol`, p.ProxyProtocol);
  if (given !== undefined || current.length === 0) return { ...port, proxyProtocol: given ?? "" };
  const { protocol, targetPort, publishMode } = normalizePort(port, field); // the core's defaults, to find the same port
  const same = current.find((c) => c.protocol === protocol && c.targetPort === targetPort && c.publishMode === publishMode);
  return { ...port, proxyProtocol: same?.proxyProtocol ?? "" };
}

/** Docker's EndpointSpec; vipmesh's Lb* fields, when absent (the docker CLI drops them), keep `current`'s values. */
function endpointSpecFromDocker(json: Json | undefined, warnings: Warnings, current: EndpointSpec | undefined): Loose<EndpointSpec> {
  const e = json ?? {};
  const f = "EndpointSpec";
  const weights = object(`${f}.LbWeights`, e.LbWeights);
  for (const [slot, w] of Object.entries(weights ?? {})) integer(`${f}.LbWeights.${slot}`, w);
  const timeoutMs = duration(`${f}.LbAffinityTimeout`, e.LbAffinityTimeout);
  return {
    mode: string(`${f}.Mode`, e.Mode) ?? "",
    ports: (list(`${f}.Ports`, e.Ports) ?? []).map((p, i) => portFromDocker(`${f}.Ports[${i}]`, p, warnings, current?.ports ?? [])),
    lbScheduler: string(`${f}.LbScheduler`, e.LbScheduler) ?? current?.lbScheduler ?? "",
    lbWeights: (weights as Record<string, number> | undefined) ?? current?.lbWeights ?? {},
    lbAffinity: string(`${f}.LbAffinity`, e.LbAffinity) ?? current?.lbAffinity ?? "",
    // the timeout goes with its affinity: kept only when both are left out
    lbAffinityTimeoutS: timeoutMs !== undefined ? Math.round(timeoutMs / 1000) : e.LbAffinity === undefined ? (current?.lbAffinityTimeoutS ?? 0) : 0,
  };
}

/** TaskTemplate.Networks, or the deprecated top-level Networks when there are none; a Target is a network's name or ID. */
function networksFromDocker(root: Json, tt: Json | undefined, warnings: Warnings) {
  const inTemplate = list("TaskTemplate.Networks", tt?.Networks);
  const field = inTemplate?.length ? "TaskTemplate.Networks" : "Networks";
  const raw = inTemplate?.length ? inTemplate : (list("Networks", root.Networks) ?? []);
  return raw.map((v, i) => {
    const n = object(`${field}[${i}]`, v) ?? {};
    warnings.unsupported(`${field}[${i}].DriverOpts`, n.DriverOpts);
    const target = string(`${field}[${i}].Target`, n.Target);
    if (!target) throw invalid(`${field}[${i}].Target is required: a network's name or ID`);
    const aliases = strings(`${field}[${i}].Aliases`, n.Aliases) ?? [];
    return { target, ...(aliases.length > 0 ? { aliases } : {}) };
  });
}

/** Docker's Mode: Replicated (Replicas absent: 1) or Global; jobs are refused. */
function modeFromDocker(json: Json | undefined): Pick<Loose<ServiceSpec>, "replicated" | "global"> {
  const mode = json ?? {};
  for (const job of ["ReplicatedJob", "GlobalJob"]) {
    if (mode[job] !== undefined && mode[job] !== null) {
      throw invalid(`Mode.${job}: vipmesh runs services, not jobs; use Mode.Replicated or Mode.Global`);
    }
  }
  const replicated = object("Mode.Replicated", mode.Replicated);
  if (object("Mode.Global", mode.Global)) {
    if (replicated) throw invalid("Mode: a service is either Replicated or Global, not both");
    return { global: {} };
  }
  return { replicated: { replicas: integer("Mode.Replicated.Replicas", replicated?.Replicas) ?? 1 } };
}

/**
 * Docker's ServiceSpec (a create's or an update's whole body) → vipmesh's
 * spec, for the cluster to validate. Types are checked here, with the Docker
 * field in the message; unknown fields are ignored (as Docker does); known
 * ones vipmesh does not honour, when set, come back as warnings. `current`:
 * an update's spec before it, whose vipmesh-only fields stay where the body
 * leaves them out.
 */
export function serviceSpecFromDocker(json: unknown, current?: ServiceSpec): { spec: Loose<ServiceSpec>; warnings: string[] } {
  const root = object("the service spec", json);
  if (!root) throw invalid("the request body must be a service spec (a JSON object)");
  const warnings = new Warnings();
  const tt = object("TaskTemplate", root.TaskTemplate);
  const spec: Loose<ServiceSpec> = {
    annotations: { name: string("Name", root.Name) ?? "", labels: stringMap("Labels", root.Labels) ?? {} },
    taskTemplate: taskSpecFromDocker(tt, warnings),
    ...modeFromDocker(object("Mode", root.Mode)),
    networks: networksFromDocker(root, tt, warnings),
    endpointSpec: endpointSpecFromDocker(object("EndpointSpec", root.EndpointSpec), warnings, current?.endpointSpec),
    updateConfig: updateConfigFromDocker("UpdateConfig", object("UpdateConfig", root.UpdateConfig), warnings),
    rollbackConfig: updateConfigFromDocker("RollbackConfig", object("RollbackConfig", root.RollbackConfig), warnings),
  };
  return { spec, warnings: warnings.list };
}
