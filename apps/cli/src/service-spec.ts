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
  type Resources,
  type RestartPolicy,
  type ServiceSpec,
  type ServiceUpdate,
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
  /** Only the reservations given (--reserve-cpu, --reserve-memory). */
  reservations?: Resources;
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
  /** Docker's Image: the tasks run it (a container, or a process for a known image such as vipmesh/whoami). */
  image?: string | undefined;
  /** The words after the flags: with an image, Docker's Args (they replace its CMD); without, the host command. */
  command: string[];
  /** --entrypoint, split into words: Docker's Command (replaces the image's ENTRYPOINT); needs an image. */
  entrypoint?: string[] | undefined;
  /** --workdir: Docker's Dir. */
  workdir?: string | undefined;
  hostname?: string | undefined;
  containerLabels?: Record<string, string>;
  /** Only the fields given; none = no policy (the manager's default). */
  restartPolicy?: Partial<RestartPolicy>;
}

export function buildServiceSpec(f: ServiceCreateFlags): ServiceSpec {
  if (f.mode === "global" && f.replicas !== undefined) {
    throw new UsageError("--replicas cannot be used with --mode global");
  }
  if (f.entrypoint !== undefined && !f.image) {
    throw new UsageError("--entrypoint needs --image: without an image, the words after the flags are the command to run");
  }
  // Docker's reading: with an image, the words after the flags replace its CMD; without, they are the host command
  return normalizeServiceSpec({
    annotations: { name: f.name, labels: f.labels },
    taskTemplate: {
      container: {
        image: f.image,
        command: f.image ? (f.entrypoint ?? []) : f.command,
        args: f.image ? f.command : [],
        hostname: f.hostname,
        dir: f.workdir,
        labels: f.containerLabels,
        env: f.env,
        healthcheck: f.healthcheck ?? null,
        user: f.user ?? "",
        capabilityAdd: f.capAdd ?? [],
        capabilityDrop: f.capDrop ?? [],
      },
      resources: { limits: f.limits ?? {}, reservations: f.reservations ?? {} },
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

/**
 * `--entrypoint`/`--args` text split into words as a POSIX shell would (as
 * Docker's CLI does): blanks separate, quotes and backslashes keep them.
 */
export function shellWords(flag: string, text: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else word += c;
    } else if (c === "\\" && i + 1 < text.length && (quote === undefined || '"\\$`'.includes(text[i + 1]!))) {
      word = (word ?? "") + text[++i];
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= "";
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else {
      word = (word ?? "") + c;
    }
  }
  if (quote) throw new UsageError(`${flag} "${text}": the ${quote === "'" ? "single" : "double"} quote is not closed`);
  if (word !== undefined) words.push(word);
  return words;
}

/**
 * What `service update --args` changes, read as create reads its words: a
 * service with an image gets them as Docker's Args (its CMD replaced, its
 * Command — the entrypoint from create's --entrypoint — kept; none: the
 * image's CMD again), so update --args W leaves the spec create --args-less
 * words W would have made; one without an image gets them as its host command.
 */
export function argsUpdate(current: ServiceSpec, image: string | undefined, words: string[]): Pick<ServiceUpdate, "command" | "args"> {
  if (image ?? current.taskTemplate.container.image) return { args: words };
  if (words.length === 0) throw new UsageError("--args needs a command: the service has no image, so the words are what it runs");
  return { command: words };
}

/**
 * `service update`'s --image, --entrypoint and --args as one change to what
 * the tasks run. --entrypoint needs an image after the update, as on create.
 */
export function commandUpdate(
  current: ServiceSpec,
  f: { image?: string | undefined; entrypoint?: string[] | undefined; args?: string[] | undefined },
): Pick<ServiceUpdate, "command" | "args" | "entrypoint"> {
  const image = f.image ?? current.taskTemplate.container.image;
  if (f.entrypoint !== undefined && !image?.trim()) {
    throw new UsageError(
      `--entrypoint needs an image: service ${current.annotations.name} has none${f.image === "" ? " after --image \"\"" : ""}, so its host command is what it runs (change it with --args, or give an image with --image)`,
    );
  }
  return { ...(f.entrypoint !== undefined ? { entrypoint: f.entrypoint } : {}), ...(f.args ? argsUpdate(current, f.image, f.args) : {}) };
}
