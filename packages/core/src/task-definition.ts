// Whether a task still matches its service: what a rolling update compares.
// A task is current when it was made from the service's task template and
// networks as they are now, whatever the spec version counter says, so that a
// rollback keeps the tasks that already run the spec it goes back to.

import type { Service, ServiceSpec, Task, TaskSpec } from "./types.ts";

/** JSON with object keys sorted, so equal values give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

const definition = (template: TaskSpec, networkIds: readonly string[]) =>
  canonicalJson([template, [...networkIds].sort()]);

export const specDefinition = (spec: ServiceSpec): string =>
  definition(
    spec.taskTemplate,
    spec.networks.map((n) => n.target),
  );

export const isTaskCurrent = (t: Task, s: Service): boolean =>
  definition(
    t.spec,
    t.networks.map((a) => a.networkId),
  ) === specDefinition(s.spec);
