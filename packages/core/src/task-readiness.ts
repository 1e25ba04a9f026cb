// When a task takes new connections (load balancing) and is in DNS: the one
// rule the manager, the agents, the CLI and haproxy-gen judge tasks by.

/** What readiness looks at, on a domain Task or the wire's (whose fields may be missing or null). */
export interface TaskReadinessFacts {
  desiredState?: string | null;
  status?: { state?: string | null; health?: string | null } | null;
  spec?: { container?: { healthcheck?: { test?: readonly string[] | null } | null } | null } | null;
}

/**
 * Running, not told to stop, and healthy: a task with a health check has
 * passed it (no health reported yet is not healthy), one without is ready once running.
 */
export const isTaskReady = (t: TaskReadinessFacts): boolean =>
  t.desiredState === "running" &&
  t.status?.state === "running" &&
  (t.status.health === "healthy" || (!t.status.health && !t.spec?.container?.healthcheck?.test?.length));
