// The one lab a test file's cases share (a lab takes seconds to come up): up
// before the first case, down after the last, and then nothing of it may be
// left — no namespace, no /etc/netns file, no task cgroup. `lab` and `client`
// are live bindings: a file imports them and sees the lab once it is up.

import type { ClusterServiceClient } from "@vipmesh/api";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import { labClient, labDown, type LabLayout, type LabOptions, labUp, listNamespaces } from "../src/lab.ts";

export let lab: LabLayout;
export let client: ClusterServiceClient;

const CGROUPS = "/sys/fs/cgroup";

/** What a lab named `name` left: its namespaces, /etc/netns files and its agents' task cgroups (under `vm-<name>-<node>`). */
function leftovers(name: string): string[] {
  const ours = (entries: string[]) => entries.filter((e) => e.startsWith(`vm-${name}-`));
  const etc = existsSync("/etc/netns") ? readdirSync("/etc/netns") : [];
  // the agents' cgroups are nested under theirs, wherever that is in each hierarchy
  const cgroups: string[] = [];
  const walk = (dir: string, depth: number): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      if (e.name.startsWith(`vm-${name}-`)) cgroups.push(join(dir, e.name));
      else if (depth > 0) walk(join(dir, e.name), depth - 1);
    }
  };
  if (existsSync(CGROUPS)) walk(CGROUPS, 4);
  return [...ours(listNamespaces()), ...ours(etc).map((f) => `/etc/netns/${f}`), ...cgroups];
}

/** Registers the file's lab: `afterDown` checks more once it is down. */
export function sharedLab(options: LabOptions, afterDown?: () => void): void {
  beforeAll(async () => {
    lab = await labUp(options);
    client = labClient(lab);
  }, 120_000);
  afterAll(() => {
    client?.close();
    labDown(options.name);
    expect(leftovers(options.name)).toEqual([]);
    afterDown?.();
  });
}

/** A new client, for a manager that restarted. */
export function reconnect(): void {
  client.close();
  client = labClient(lab);
}
