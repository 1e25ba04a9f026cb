// Turning `service create|update|scale` flags into the ServiceSpec to send.
// Pure: the manager's current spec comes in, the new spec goes out.

import {
  DEFAULT_UPDATE_CONFIG,
  type EndpointMode,
  type HealthCheck,
  type LbAffinity,
  type LbSchedulerName,
  type PortConfig,
  type Protocol,
  type ServiceSpec,
  type UpdateConfig,
  invalid,
  normalizeServiceSpec,
  parsePublish,
} from "@vipmesh/core";
import type { wire } from "@vipmesh/api";
import { UsageError } from "./errors.ts";

export interface ServiceCreateFlags {
  name: string;
  replicas?: number | undefined;
  mode?: "replicated" | "global" | undefined;
  networks: string[];
  endpointMode?: EndpointMode | undefined;
  publish: string[];
  labels: Record<string, string>;
  constraints: string[];
  env: string[];
  lbScheduler?: LbSchedulerName | undefined;
  /** slot → weight */
  lbWeights?: Record<string, number>;
  lbAffinity?: LbAffinity | undefined;
  /** Seconds; unset = the default (3 h) with client-ip. */
  lbAffinityTimeoutS?: number | undefined;
  /** 0 in a field = the default. */
  healthcheck?: HealthCheck;
  updateConfig: Partial<UpdateConfig>;
  rollbackConfig: Partial<UpdateConfig>;
  command: string[];
}

export function buildServiceSpec(f: ServiceCreateFlags): ServiceSpec {
  if (f.mode === "global" && f.replicas !== undefined) {
    throw new UsageError("--replicas cannot be used with --mode global");
  }
  return normalizeServiceSpec({
    annotations: { name: f.name, labels: f.labels },
    taskTemplate: {
      container: { command: f.command, env: f.env, healthcheck: f.healthcheck ?? null },
      placement: { constraints: f.constraints },
      forceUpdate: 0,
    },
    ...(f.mode === "global" ? { global: {} } : { replicated: { replicas: f.replicas ?? 1 } }),
    networks: f.networks.map((target) => ({ target })),
    endpointSpec: {
      mode: f.endpointMode,
      ports: f.publish.map(parsePublish),
      lbScheduler: f.lbScheduler ?? "",
      lbWeights: f.lbWeights ?? {},
      lbAffinity: f.lbAffinity ?? "none",
      lbAffinityTimeoutS: f.lbAffinityTimeoutS ?? 0,
    },
    updateConfig: { ...DEFAULT_UPDATE_CONFIG, ...f.updateConfig },
    rollbackConfig: { ...DEFAULT_UPDATE_CONFIG, ...f.rollbackConfig },
  });
}

/** The manager's copy of a spec as a complete, typed ServiceSpec to modify. */
export const specFromWire = (spec: wire.ServiceSpec): ServiceSpec => normalizeServiceSpec(spec);

export interface ServiceUpdateFlags {
  replicas?: number | undefined;
  envAdd: string[];
  envRm: string[];
  labelAdd: Record<string, string>;
  labelRm: string[];
  publishAdd: string[];
  publishRm: string[];
  endpointMode?: EndpointMode | undefined;
  constraintAdd: string[];
  constraintRm: string[];
  lbScheduler?: LbSchedulerName | undefined;
  /** slot → weight, merged into the current ones */
  lbWeights?: Record<string, number>;
  /** none drops the timeout too; client-ip keeps the current one (or takes the default). */
  lbAffinity?: LbAffinity | undefined;
  lbAffinityTimeoutS?: number | undefined;
  updateConfig: Partial<UpdateConfig>;
  rollbackConfig: Partial<UpdateConfig>;
  force: boolean;
  /** Replaces the command. */
  args?: string[] | undefined;
}

export const noServiceUpdate = (): ServiceUpdateFlags => ({
  envAdd: [],
  envRm: [],
  labelAdd: {},
  labelRm: [],
  publishAdd: [],
  publishRm: [],
  constraintAdd: [],
  constraintRm: [],
  updateConfig: {},
  rollbackConfig: {},
  force: false,
});

/** Docker's order: removals first, then additions, so `--env-rm A --env-add A=2` ends with A=2. */
export function applyServiceUpdate(current: ServiceSpec, f: ServiceUpdateFlags): ServiceSpec {
  const name = current.annotations.name;
  if (f.replicas !== undefined && current.global) {
    throw invalid(`service ${name} is global: --replicas only applies to replicated services`);
  }
  const container = current.taskTemplate.container;
  const lbAffinity = f.lbAffinity ?? current.endpointSpec.lbAffinity;
  return normalizeServiceSpec({
    ...current,
    annotations: { name, labels: updateLabels(current.annotations.labels, f.labelAdd, f.labelRm) },
    taskTemplate: {
      container: {
        ...container,
        command: f.args ?? container.command,
        env: updateEnv(container.env, f.envAdd, f.envRm),
      },
      placement: {
        constraints: updateConstraints(current.taskTemplate.placement.constraints, f.constraintAdd, f.constraintRm),
      },
      forceUpdate: current.taskTemplate.forceUpdate + (f.force ? 1 : 0),
    },
    ...(f.replicas !== undefined ? { replicated: { replicas: f.replicas } } : {}),
    endpointSpec: {
      mode: f.endpointMode ?? current.endpointSpec.mode,
      ports: updatePorts(current.endpointSpec.ports, f.publishAdd, f.publishRm),
      lbScheduler: f.lbScheduler ?? current.endpointSpec.lbScheduler,
      lbWeights: { ...current.endpointSpec.lbWeights, ...f.lbWeights },
      lbAffinity,
      lbAffinityTimeoutS: f.lbAffinityTimeoutS ?? (lbAffinity === "none" ? 0 : current.endpointSpec.lbAffinityTimeoutS),
    },
    updateConfig: { ...current.updateConfig, ...f.updateConfig },
    rollbackConfig: { ...current.rollbackConfig, ...f.rollbackConfig },
  });
}

const envKey = (entry: string): string => entry.split("=")[0]!;

function updateEnv(env: readonly string[], add: readonly string[], rm: readonly string[]): string[] {
  const removed = new Set([...rm.map(envKey), ...add.map(envKey)]);
  return [...env.filter((e) => !removed.has(envKey(e))), ...add];
}

function updateLabels(
  labels: Readonly<Record<string, string>>,
  add: Readonly<Record<string, string>>,
  rm: readonly string[],
): Record<string, string> {
  const out = { ...labels };
  for (const k of rm) delete out[k];
  return { ...out, ...add };
}

function updateConstraints(constraints: readonly string[], add: readonly string[], rm: readonly string[]): string[] {
  const removed = new Set(rm.map((c) => c.trim()));
  const kept = constraints.filter((c) => !removed.has(c.trim()));
  return [...kept, ...add.filter((c) => !kept.includes(c))];
}

/** `--publish-rm TARGET[/PROTOCOL]` (a full `PUBLISHED:TARGET/PROTOCOL` works too: its target counts). */
export function parsePublishRm(text: string): { targetPort: number; protocol: Protocol } {
  const m = /^(?:\d+:)?(\d+)(?:\/(tcp|udp|sctp))?$/.exec(text);
  if (!m) throw new UsageError(`--publish-rm "${text}" is not TARGET[/PROTOCOL], e.g. 80 or 53/udp`);
  return { targetPort: Number(m[1]), protocol: (m[2] ?? "tcp") as Protocol };
}

const sameBinding = (a: PortConfig, b: PortConfig): boolean =>
  a.protocol === b.protocol && a.publishMode === b.publishMode && a.publishedPort === b.publishedPort;

function updatePorts(ports: readonly PortConfig[], add: readonly string[], rm: readonly string[]): PortConfig[] {
  const removals = rm.map(parsePublishRm);
  let out = ports.filter((p) => !removals.some((r) => r.targetPort === p.targetPort && r.protocol === p.protocol));
  for (const port of add.map(parsePublish)) {
    if (out.some((p) => sameBinding(p, port) && p.targetPort === port.targetPort)) continue;
    // An explicit published port moves to the new target rather than being published twice.
    if (port.publishedPort !== 0) out = out.filter((p) => !sameBinding(p, port));
    out.push(port);
  }
  return out;
}

/** `service scale web=3`. */
export function parseScale(text: string): { service: string; replicas: number } {
  const m = /^([^=\s]+)=(\d+)$/.exec(text);
  if (!m) throw new UsageError(`"${text}" is not SERVICE=REPLICAS, e.g. web=3`);
  return { service: m[1]!, replicas: Number(m[2]) };
}
