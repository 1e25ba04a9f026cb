// This manager's own identity: its node ID and when it first started, kept in
// its data dir (each manager of a cluster has its own; the store is shared).
// A data dir whose SQLite store kept them as settings, before managers could
// be several, keeps those.

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { newId } from "./ids.ts";
import type { Settings } from "./store/cluster-store.ts";

export interface ManagerIdentity {
  id: string;
  createdAt: string;
}

export function managerIdentity(dataDir: string, settings: Settings): ManagerIdentity {
  const file = join(dataDir, "manager.json");
  if (existsSync(file)) return JSON.parse(readFileSync(file, "utf8")) as ManagerIdentity;
  const identity = {
    id: settings.get("manager-node-id") ?? newId(),
    createdAt: settings.get("manager-created-at") ?? new Date().toISOString(),
  };
  writeFileSync(file, `${JSON.stringify(identity)}\n`, { mode: 0o600 });
  return identity;
}
