// Turning `service create` flags into the ServiceSpec to send, and parsing the
// arguments of update and scale (core's applyServiceUpdate merges an update). Pure.

import {
  DEFAULT_UPDATE_CONFIG,
  type EndpointMode,
  type HealthCheck,
  type LbAffinity,
  type LbSchedulerName,
  type NetworkAttachmentConfig,
  type Protocol,
  type PublishedTarget,
  type ResourceLimits,
  type RestartPolicy,
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
  /** `--network` values, either form (parseNetworkAttachment). */
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
  /** Docker's Image: with no command, a known one runs its entrypoint (core's taskCommand). */
  image?: string | undefined;
  /** After `--`: Docker's Command, run whatever the image. */
  command: string[];
  hostname?: string | undefined;
  containerLabels?: Record<string, string>;
  /** Only the fields given; none = no policy (the manager's default). */
  restartPolicy?: Partial<RestartPolicy>;
}

export function buildServiceSpec(f: ServiceCreateFlags): ServiceSpec {
  if (f.mode === "global" && f.replicas !== undefined) {
    throw new UsageError("--replicas cannot be used with --mode global");
  }
  return normalizeServiceSpec({
    annotations: { name: f.name, labels: f.labels },
    taskTemplate: {
      container: {
        image: f.image,
        command: f.command,
        hostname: f.hostname,
        labels: f.containerLabels,
        env: f.env,
        healthcheck: f.healthcheck ?? null,
        user: f.user ?? "",
        capabilityAdd: f.capAdd ?? [],
        capabilityDrop: f.capDrop ?? [],
      },
      resources: { limits: f.limits ?? {} },
      placement: { constraints: f.constraints },
      forceUpdate: 0,
      restartPolicy: Object.keys(f.restartPolicy ?? {}).length > 0 ? f.restartPolicy : null,
    },
    ...(f.mode === "global" ? { global: {} } : { replicated: { replicas: f.replicas ?? 1 } }),
    networks: f.networks.map(parseNetworkAttachment),
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

/**
 * `--network`/`--network-add` in Docker's two forms: a network's name or ID,
 * or `name=NET,alias=A,alias=B` (keys in any case, as Docker's). Docker's
 * other keys (ip, driver-opt, …) are refused: vipmesh has no use for them.
 * The values are the core's to check.
 */
export function parseNetworkAttachment(text: string): NetworkAttachmentConfig {
  if (!text.includes("=")) return { target: text };
  const usage = `--network "${text}": expected NAME or name=NAME[,alias=ALIAS...]`;
  let target = "";
  const aliases: string[] = [];
  for (const field of text.split(",")) {
    const eq = field.indexOf("=");
    const key = field.slice(0, eq).trim().toLowerCase();
    const value = field.slice(eq + 1);
    if (eq <= 0) throw new UsageError(`${usage}: "${field}" is not KEY=VALUE`);
    if (key === "name") target = value;
    else if (key === "alias") aliases.push(value);
    else throw new UsageError(`${usage}: "${key}" is not a key vipmesh takes (name, alias)`);
  }
  if (target === "") throw new UsageError(`${usage}: the network's name or ID (name=) is missing`);
  return { target, ...(aliases.length > 0 ? { aliases } : {}) };
}

/** `service scale web=3`. */
export function parseScale(text: string): { service: string; replicas: number } {
  const m = /^([^=\s]+)=(\d+)$/.exec(text);
  if (!m) throw new UsageError(`"${text}" is not SERVICE=REPLICAS, e.g. web=3`);
  return { service: m[1]!, replicas: Number(m[2]) };
}
