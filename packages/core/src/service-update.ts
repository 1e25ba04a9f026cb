// A change to a service's spec, and its result: what `vipmesh service update`
// and `scale` send, and what a Docker Engine API would apply, as one pure merge.

import { canonicalCapability } from "./confinement.ts";
import { invalid } from "./errors.ts";
import type {
  EndpointMode,
  LbAffinity,
  LbSchedulerName,
  NetworkAttachmentConfig,
  PortConfig,
  Protocol,
  ResourceLimits,
  Resources,
  RestartPolicy,
  ServiceSpec,
  UpdateConfig,
} from "./types.ts";
import { normalizeServiceSpec } from "./validation.ts";

/** A port to stop publishing: every binding of this target port and protocol goes. */
export interface PublishedTarget {
  targetPort: number;
  protocol: Protocol;
}

/** What to change in a service's spec; an absent field leaves its part as it is. */
export interface ServiceUpdate {
  replicas?: number | undefined;
  /** KEY=VALUE entries, each adding or replacing its variable. */
  envAdd?: string[];
  /** Variable names. */
  envRm?: string[];
  labelAdd?: Record<string, string>;
  labelRm?: string[];
  portsAdd?: PortConfig[];
  portsRm?: PublishedTarget[];
  endpointMode?: EndpointMode | undefined;
  constraintAdd?: string[];
  constraintRm?: string[];
  lbScheduler?: LbSchedulerName | undefined;
  /** slot → weight, merged into the current ones. */
  lbWeights?: Record<string, number>;
  /** none drops the timeout too; client-ip keeps the current one (or takes the default). */
  lbAffinity?: LbAffinity | undefined;
  lbAffinityTimeoutS?: number | undefined;
  updateConfig?: Partial<UpdateConfig>;
  rollbackConfig?: Partial<UpdateConfig>;
  /** Replace the tasks even if nothing else changed. */
  force?: boolean;
  /** Replaces what the task runs: the command, and any Docker Args with it (from `docker service create IMAGE ARGS…`). */
  command?: string[] | undefined;
  /** Docker's --entrypoint: replaces the Command alone (the image's ENTRYPOINT); [] = the image's again. */
  entrypoint?: string[] | undefined;
  /** Docker's --args: replaces the Args alone (the image's CMD); [] = the image's again. */
  args?: string[] | undefined;
  /** Docker's Dir (--workdir); "" = the image's. */
  dir?: string | undefined;
  /** Docker's Image; "" = none. */
  image?: string | undefined;
  /** The task's host name; "" = the default (its short ID). */
  hostname?: string | undefined;
  /** Container labels (Docker's ContainerSpec.Labels), removals first as for labelAdd/labelRm. */
  containerLabelAdd?: Record<string, string>;
  containerLabelRm?: string[];
  /** The restart policy's fields to set; the others stay (Docker's defaults when the service had no policy). */
  restartPolicy?: Partial<RestartPolicy>;
  /** Attachments to add, as given (a target that is attached already is the manager's to refuse). */
  networkAdd?: NetworkAttachmentConfig[];
  /** Network IDs whose attachments go: the caller resolves names, as Docker's CLI does, since the spec holds IDs. */
  networkRm?: string[];
  /** UID[:GID] or NAME[:GROUP] the tasks run as; "" = root again. */
  user?: string | undefined;
  /** `--cap-add`/`--cap-drop`, merged as Docker's `service update` does (updateCapabilities); RESET empties its list first. */
  capAdd?: string[];
  capDrop?: string[];
  /** Limits to set, each on its own; 0 clears one. */
  limits?: ResourceLimits;
  /** Reservations to set, each on its own; 0 clears one. */
  reservations?: Resources;
}

/** In `--cap-add`/`--cap-drop` of an update: empty the list before the rest applies. */
export const RESET_CAPABILITIES = "RESET";

/** The spec `update` makes of `current`, validated. Docker's order: removals first, then additions, so removing A and adding A=2 ends with A=2. */
export function applyServiceUpdate(current: ServiceSpec, update: ServiceUpdate): ServiceSpec {
  const name = current.annotations.name;
  if (update.replicas !== undefined && current.global) {
    throw invalid(`service ${name} is global: replicas only apply to replicated services`);
  }
  const container = current.taskTemplate.container;
  const image = update.image ?? container.image;
  if (update.entrypoint !== undefined && !image?.trim()) {
    throw invalid(`service ${name} has no image: --entrypoint replaces an image's ENTRYPOINT; give the host command with --args, or an image with --image`);
  }
  const lbAffinity = update.lbAffinity ?? current.endpointSpec.lbAffinity;
  return normalizeServiceSpec({
    ...current,
    annotations: { name, labels: updateLabels(current.annotations.labels, update.labelAdd ?? {}, update.labelRm ?? []) },
    taskTemplate: {
      container: {
        ...container,
        image,
        ...updateCommand(container, image, update),
        hostname: update.hostname ?? container.hostname,
        dir: update.dir ?? container.dir,
        labels: updateLabels(container.labels ?? {}, update.containerLabelAdd ?? {}, update.containerLabelRm ?? []),
        env: updateEnv(container.env, update.envAdd ?? [], update.envRm ?? []),
        user: update.user ?? container.user,
        ...updateCapabilities(container.capabilityAdd ?? [], container.capabilityDrop ?? [], update.capAdd ?? [], update.capDrop ?? []),
      },
      resources: {
        limits: { ...current.taskTemplate.resources?.limits, ...update.limits },
        reservations: { ...current.taskTemplate.resources?.reservations, ...update.reservations },
      },
      placement: {
        constraints: updateConstraints(current.taskTemplate.placement.constraints, update.constraintAdd ?? [], update.constraintRm ?? []),
      },
      forceUpdate: current.taskTemplate.forceUpdate + (update.force ? 1 : 0),
      restartPolicy: updateRestartPolicy(current.taskTemplate.restartPolicy, update.restartPolicy ?? {}),
    },
    ...(update.replicas !== undefined ? { replicated: { replicas: update.replicas } } : {}),
    networks: updateNetworks(current.networks, update.networkAdd ?? [], update.networkRm ?? []),
    endpointSpec: {
      mode: update.endpointMode ?? current.endpointSpec.mode,
      ports: updatePorts(current.endpointSpec.ports, update.portsAdd ?? [], update.portsRm ?? []),
      lbScheduler: update.lbScheduler ?? current.endpointSpec.lbScheduler,
      lbWeights: { ...current.endpointSpec.lbWeights, ...update.lbWeights },
      lbAffinity,
      lbAffinityTimeoutS: update.lbAffinityTimeoutS ?? (lbAffinity === "none" ? 0 : current.endpointSpec.lbAffinityTimeoutS),
    },
    updateConfig: { ...current.updateConfig, ...update.updateConfig },
    rollbackConfig: { ...current.rollbackConfig, ...update.rollbackConfig },
  });
}

/**
 * Command and Args after an update. Docker's meaning: Command replaces the
 * image's ENTRYPOINT, Args its CMD. A service that gets an image it did not
 * have keeps what it ran as Args (its host command is the image's CMD now),
 * unless the update gives them.
 */
function updateCommand(container: ServiceSpec["taskTemplate"]["container"], image: string | undefined, update: ServiceUpdate): { command: string[]; args: string[] } {
  if (update.command) return { command: update.command, args: [] };
  const gainsImage = !container.image?.trim() && !!image?.trim();
  if (gainsImage) return { command: update.entrypoint ?? [], args: update.args ?? [...container.command, ...(container.args ?? [])] };
  return { command: update.entrypoint ?? container.command, args: update.args ?? container.args ?? [] };
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

/** Docker's rule: given fields replace the current policy's, or those of the default one (normalizeServiceSpec's) when there is none. */
function updateRestartPolicy(policy: RestartPolicy | null | undefined, set: Partial<RestartPolicy>): Partial<RestartPolicy> | null {
  const given = Object.fromEntries(Object.entries(set).filter(([, v]) => v !== undefined));
  if (Object.keys(given).length === 0) return policy ?? null;
  return { ...policy, ...given };
}

function updateNetworks(
  networks: readonly NetworkAttachmentConfig[],
  add: readonly NetworkAttachmentConfig[],
  rmIds: readonly string[],
): NetworkAttachmentConfig[] {
  return [...networks.filter((n) => !rmIds.includes(n.target)), ...add];
}

function updateConstraints(constraints: readonly string[], add: readonly string[], rm: readonly string[]): string[] {
  const removed = new Set(rm.map((c) => c.trim()));
  const kept = constraints.filter((c) => !removed.has(c.trim()));
  return [...kept, ...add.filter((c) => !kept.includes(c))];
}

/**
 * Docker's rule for an update: a capability added comes off the drop list and
 * goes on the add list, one dropped the other way round; named in both, it is
 * added. Names are compared canonical; unknown ones are kept as typed for the
 * validator to name.
 */
function updateCapabilities(
  add: readonly string[],
  drop: readonly string[],
  toAddIn: readonly string[],
  toDropIn: readonly string[],
): { capabilityAdd: string[]; capabilityDrop: string[] } {
  const isReset = (c: string) => c.trim().toUpperCase() === RESET_CAPABILITIES;
  const canonical = (names: readonly string[]) => names.filter((c) => !isReset(c)).map((c) => canonicalCapability(c) ?? c);
  const toAdd = canonical(toAddIn);
  const toDrop = canonical(toDropIn).filter((c) => !toAdd.includes(c));
  const keptAdd = toAddIn.some(isReset) ? [] : add.filter((c) => !toDrop.includes(c));
  const keptDrop = toDropIn.some(isReset) ? [] : drop.filter((c) => !toAdd.includes(c));
  return { capabilityAdd: [...keptAdd, ...toAdd], capabilityDrop: [...keptDrop, ...toDrop] };
}

const sameBinding = (a: PortConfig, b: PortConfig): boolean =>
  a.protocol === b.protocol && a.publishMode === b.publishMode && a.publishedPort === b.publishedPort;

function updatePorts(ports: readonly PortConfig[], add: readonly PortConfig[], rm: readonly PublishedTarget[]): PortConfig[] {
  let out = ports.filter((p) => !rm.some((r) => r.targetPort === p.targetPort && r.protocol === p.protocol));
  for (const port of add) {
    if (out.some((p) => sameBinding(p, port) && p.targetPort === port.targetPort)) continue;
    // An explicit published port moves to the new target rather than being published twice.
    if (port.publishedPort !== 0) out = out.filter((p) => !sameBinding(p, port));
    out.push(port);
  }
  return out;
}
