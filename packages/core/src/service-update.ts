// A change to a service's spec, and its result: what `vipmesh service update`
// and `scale` send, and what a Docker Engine API would apply, as one pure merge.

import { invalid } from "./errors.ts";
import type { EndpointMode, LbAffinity, LbSchedulerName, PortConfig, Protocol, ServiceSpec, UpdateConfig } from "./types.ts";
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
  /** Replaces the command. */
  command?: string[] | undefined;
}

/** The spec `update` makes of `current`, validated. Docker's order: removals first, then additions, so removing A and adding A=2 ends with A=2. */
export function applyServiceUpdate(current: ServiceSpec, update: ServiceUpdate): ServiceSpec {
  const name = current.annotations.name;
  if (update.replicas !== undefined && current.global) {
    throw invalid(`service ${name} is global: replicas only apply to replicated services`);
  }
  const container = current.taskTemplate.container;
  const lbAffinity = update.lbAffinity ?? current.endpointSpec.lbAffinity;
  return normalizeServiceSpec({
    ...current,
    annotations: { name, labels: updateLabels(current.annotations.labels, update.labelAdd ?? {}, update.labelRm ?? []) },
    taskTemplate: {
      container: {
        ...container,
        command: update.command ?? container.command,
        env: updateEnv(container.env, update.envAdd ?? [], update.envRm ?? []),
      },
      placement: {
        constraints: updateConstraints(current.taskTemplate.placement.constraints, update.constraintAdd ?? [], update.constraintRm ?? []),
      },
      forceUpdate: current.taskTemplate.forceUpdate + (update.force ? 1 : 0),
    },
    ...(update.replicas !== undefined ? { replicated: { replicas: update.replicas } } : {}),
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
