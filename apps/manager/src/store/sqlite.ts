// The embedded database, the store of a cluster with one manager: one table
// per object kind, each row an object as JSON; the version and the settings in
// meta. One SQLite transaction per commit, done before commit() returns (so a
// change and what it sets off stay in one turn of the event loop).

import Database from "better-sqlite3";
import { chmodSync, closeSync, mkdirSync, openSync } from "node:fs";
import { join } from "node:path";
import type { ObjectByKind, ObjectKind } from "@vipmesh/core";
import { KINDS, type PersistedState, StaleWrite, type StoreBackend, type Write } from "./backend.ts";

const SETTING = "setting:";

export class SqliteBackend implements StoreBackend {
  private readonly db: Database.Database;
  private readonly putStmt: Record<ObjectKind, Database.Statement>;
  private readonly deleteStmt: Record<ObjectKind, Database.Statement>;
  private readonly putMeta: Database.Statement;
  private readonly getMeta: Database.Statement;

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
    this.putMeta = this.db.prepare(`INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)`);
    this.getMeta = this.db.prepare(`SELECT value FROM meta WHERE key = ?`);
  }

  private version(): number {
    const row = this.getMeta.get("version") as { value: string } | undefined;
    return row ? Number(row.value) : 0;
  }

  load(): Promise<PersistedState> {
    const read = <K extends ObjectKind>(k: K) =>
      (this.db.prepare(`SELECT data FROM ${k}`).all() as { data: string }[]).map((r) => JSON.parse(r.data) as ObjectByKind[K]);
    const settings: Record<string, string> = {};
    for (const r of this.db.prepare(`SELECT key, value FROM meta WHERE key LIKE '${SETTING}%'`).all() as { key: string; value: string }[]) {
      settings[r.key.slice(SETTING.length)] = r.value;
    }
    return Promise.resolve({
      version: this.version(),
      objects: { node: read("node"), network: read("network"), service: read("service"), task: read("task") },
      settings,
    });
  }

  /** Synchronous (the interface allows a promise): one writer, so the version check cannot fail but for a bug. */
  commit(version: number, writes: readonly Write[]): void {
    this.db.transaction(() => {
      const stored = this.version();
      if (stored !== version - 1) throw new StaleWrite(stored);
      for (const w of writes) {
        if (w.op === "put") this.putStmt[w.kind].run(w.object.id, JSON.stringify(w.object));
        else if (w.op === "delete") this.deleteStmt[w.kind].run(w.id);
        else this.putMeta.run(`${SETTING}${w.name}`, w.value);
      }
      this.putMeta.run("version", String(version));
    })();
  }

  close(): Promise<void> {
    this.db.close();
    return Promise.resolve();
  }
}
