// This manager's own identity: its node ID and when it first started, kept in
// its data dir (each manager of a cluster has its own; the store is shared).
// A SQLite store that kept them as settings, before managers could be
// several, gives them to its data dir once (never etcd's: migrated settings
// would give every new manager the same ID).

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { newId } from "./ids.ts";
import type { Settings } from "./store/cluster-store.ts";

export interface ManagerIdentity {
  id: string;
  createdAt: string;
}

export function managerIdentity(dataDir: string, legacy: Settings | undefined): ManagerIdentity {
  const file = join(dataDir, "manager.json");
  if (existsSync(file)) return JSON.parse(readFileSync(file, "utf8")) as ManagerIdentity;
  const identity = {
    id: legacy?.get("manager-node-id") ?? newId(),
    createdAt: legacy?.get("manager-created-at") ?? new Date().toISOString(),
  };
  writeFileSync(file, `${JSON.stringify(identity)}\n`, { mode: 0o600 });
  return identity;
}
