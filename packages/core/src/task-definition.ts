// Whether a task still matches its service: what a rolling update compares.
// A task is current when it was made from the service's task template and
// networks as they are now, whatever the spec version counter says, so that a
// rollback keeps the tasks that already run the spec it goes back to.

import type { PortConfig, Service, ServiceSpec, Task, TaskSpec } from "./types.ts";

/** JSON with object keys sorted, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

const definition = (template: TaskSpec, networkIds: readonly string[], hostPorts: readonly PortConfig[]) =>
  canonicalJson([template, [...networkIds].sort(), ...(hostPorts.length > 0 ? [hostPorts.map(canonicalJson).sort()] : [])]);

/** The ports a task of `spec` opens on its own node (host mode): part of what it is, unlike those of the routing mesh. */
export const hostPortsOf = (spec: ServiceSpec): PortConfig[] => spec.endpointSpec.ports.filter((p) => p.publishMode === "host");

export const specDefinition = (spec: ServiceSpec): string =>
  definition(
    spec.taskTemplate,
    spec.networks.map((n) => n.target),
    hostPortsOf(spec),
  );

export const isTaskCurrent = (t: Task, s: Service): boolean =>
  definition(
    t.spec,
    t.networks.map((a) => a.networkId),
    t.hostPorts ?? [],
  ) === specDefinition(s.spec);
