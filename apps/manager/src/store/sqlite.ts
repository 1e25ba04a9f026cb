// The embedded database: one table per object kind, each row an object as
// JSON, plus the store version. One SQLite transaction per commit.

import Database from "better-sqlite3";
import { chmodSync, closeSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import type { ObjectByKind, ObjectKind } from "@vipmesh/core";

export const KINDS: readonly ObjectKind[] = ["node", "network", "service", "task"];

export interface PersistedState {
  version: number;
  objects: { [K in ObjectKind]: ObjectByKind[K][] };
}

/** Small named values kept durably outside the versioned objects; written at once, not in a commit. */
export interface Settings {
  get(name: string): string | undefined;
  set(name: string, value: string): void;
}

export type Write =
  | { op: "put"; kind: ObjectKind; object: ObjectByKind[ObjectKind] }
  | { op: "delete"; kind: ObjectKind; id: string };

export class SqliteBackend {
  private readonly db: Database.Database;
  private readonly putStmt: Record<ObjectKind, Database.Statement>;
  private readonly deleteStmt: Record<ObjectKind, Database.Statement>;
  private readonly setVersion: Database.Statement;
  private readonly getSetting: Database.Statement;
  private readonly putSetting: Database.Statement;

  constructor(dataDir: string) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    // it holds the join token secrets and the overlay keys: owner only (SQLite gives its -wal and -shm files the same mode)
    const file = join(dataDir, "vipmesh.db");
    closeSync(openSync(file, "a", 0o600));
    chmodSync(file, 0o600); // a database made before this rule
    this.db = new Database(file);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL"); // WAL + NORMAL: durable across process crashes
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      ${KINDS.map((k) => `CREATE TABLE IF NOT EXISTS ${k} (id TEXT PRIMARY KEY, data TEXT NOT NULL);`).join("\n")}
    `);
    const stmts = (sql: (k: ObjectKind) => string) =>
      Object.fromEntries(KINDS.map((k) => [k, this.db.prepare(sql(k))])) as Record<ObjectKind, Database.Statement>;
    this.putStmt = stmts((k) => `INSERT OR REPLACE INTO ${k} (id, data) VALUES (?, ?)`);
    this.deleteStmt = stmts((k) => `DELETE FROM ${k} WHERE id = ?`);
    this.setVersion = this.db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES ('version', ?)`);
    this.getSetting = this.db.prepare(`SELECT value FROM meta WHERE key = ?`);
    this.putSetting = this.db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`);
  }

  /** The cluster's settings beside its objects (join token secrets, revoked nodes, overlay keys): `setting:<name>` in meta. */
  readonly settings: Settings = {
    get: (name) => (this.getSetting.get(`setting:${name}`) as { value: string } | undefined)?.value,
    set: (name, value) => void this.putSetting.run(`setting:${name}`, value),
  };

  load(): PersistedState {
    const row = this.db.prepare(`SELECT value FROM meta WHERE key = 'version'`).get() as { value: string } | undefined;
    const read = <K extends ObjectKind>(k: K) =>
      (this.db.prepare(`SELECT data FROM ${k}`).all() as { data: string }[]).map(
        (r) => JSON.parse(r.data) as ObjectByKind[K],
      );
    return {
      version: row ? Number(row.value) : 0,
      objects: { node: read("node"), network: read("network"), service: read("service"), task: read("task") },
    };
  }

  /** Writes all of `writes` and the new version atomically. */
  readonly commit = (version: number, writes: readonly Write[]): void => {
    this.db.transaction(() => {
      for (const w of writes) {
        if (w.op === "put") this.putStmt[w.kind].run(w.object.id, JSON.stringify(w.object));
        else this.deleteStmt[w.kind].run(w.id);
      }
      this.setVersion.run(String(version));
    })();
  };

  close(): void {
    this.db.close();
  }
}
