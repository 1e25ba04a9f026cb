// Turning `service create` flags into the ServiceSpec to send, and parsing the
// arguments of update and scale (core's applyServiceUpdate merges an update). Pure.

import {
  DEFAULT_UPDATE_CONFIG,
  type EndpointMode,
  type HealthCheck,
  type LbAffinity,
  type LbSchedulerName,
  type Protocol,
  type PublishedTarget,
  type ResourceLimits,
  type ServiceSpec,
  type UpdateConfig,
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
  /** UID[:GID] or NAME[:GROUP]; unset = root. */
  user?: string | undefined;
  capAdd?: string[];
  capDrop?: string[];
  /** Only the limits given. */
  limits?: ResourceLimits;
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
      container: {
        command: f.command,
        env: f.env,
        healthcheck: f.healthcheck ?? null,
        user: f.user ?? "",
        capabilityAdd: f.capAdd ?? [],
        capabilityDrop: f.capDrop ?? [],
      },
      resources: { limits: f.limits ?? {} },
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

/** `--publish-rm TARGET[/PROTOCOL]` (a full `PUBLISHED:TARGET/PROTOCOL` works too: its target counts). */
export function parsePublishRm(text: string): PublishedTarget {
  const m = /^(?:\d+:)?(\d+)(?:\/(tcp|udp|sctp))?$/.exec(text);
  if (!m) throw new UsageError(`--publish-rm "${text}" is not TARGET[/PROTOCOL], e.g. 80 or 53/udp`);
  return { targetPort: Number(m[1]), protocol: (m[2] ?? "tcp") as Protocol };
}

/** `service scale web=3`. */
export function parseScale(text: string): { service: string; replicas: number } {
  const m = /^([^=\s]+)=(\d+)$/.exec(text);
  if (!m) throw new UsageError(`"${text}" is not SERVICE=REPLICAS, e.g. web=3`);
  return { service: m[1]!, replicas: Number(m[2]) };
}
