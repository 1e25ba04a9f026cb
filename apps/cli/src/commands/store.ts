// vipmesh store key|migrate: the store key etcd managers share, and moving a
// SQLite cluster (one manager) into etcd (any number of managers).

import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { CommandFailed, UsageError } from "../errors.ts";
import type { Io } from "../io.ts";

interface MigrateOptions {
  dataDir: string;
  etcdEndpoints: string;
  etcdTlsDir?: string;
  storeKey: string;
}

/** The settings the cluster CA lives in with etcd (in <data-dir>/ca with SQLite). */
const CA_FILES = { "ca-cert": "ca.pem", "ca-key": "ca.key" } as const;

export function registerStoreCommands(program: Command, io: Io): void {
  const store = program.command("store").description("The cluster store: the key etcd managers share, moving a SQLite cluster into etcd");
  store
    .command("key")
    .description("Write a new store key: 32 random bytes sealing the cluster's secrets in etcd; give every manager the same file (--store-key)")
    .requiredOption("--out <file>", "where to write it (mode 0600; an existing file is never overwritten)")
    .action(async (opts: { out: string }) => {
      const { writeStoreKey } = await import("@vipmesh/manager");
      const path = resolve(opts.out);
      try {
        writeStoreKey(path);
      } catch (err) {
        throw new CommandFailed(err instanceof Error ? err.message : String(err));
      }
      io.stdout(`store key written to ${path}: keep a copy somewhere safe, without it the cluster's secrets in etcd cannot be read\n`);
    });
  store
    .command("migrate")
    .description("Copy a stopped SQLite manager's cluster (objects, settings, its CA) into an empty etcd store")
    .requiredOption("--data-dir <dir>", "the SQLite manager's data directory (the manager must be stopped)")
    .requiredOption("--etcd-endpoints <urls>", "etcd's client URLs, comma-separated: https://A:2379,https://B:2379")
    .option("--etcd-tls-dir <dir>", "the etcd client identity: ca.pem, cert.pem, key.pem (vipmesh ca issue --usage client)")
    .requiredOption("--store-key <file>", "the store key the etcd managers will use (vipmesh store key)")
    .action(async (opts: MigrateOptions) => {
      const endpoints = opts.etcdEndpoints.split(",").map((e) => e.trim()).filter(Boolean);
      if (endpoints.length === 0) throw new UsageError("--etcd-endpoints: give at least one URL");
      if (!opts.etcdTlsDir && endpoints.some((e) => e.startsWith("https://"))) throw new UsageError("https endpoints need --etcd-tls-dir (the client identity)");
      const manager = await import("@vipmesh/manager");
      try {
        io.stdout(await migrate(manager, { ...opts, endpoints }));
      } catch (err) {
        throw new CommandFailed(err instanceof Error ? err.message : String(err));
      }
    });
}

/** Copies the store and the CA files; returns what to tell the user. */
async function migrate(m: typeof import("@vipmesh/manager"), opts: MigrateOptions & { endpoints: string[] }): Promise<string> {
  const dataDir = resolve(opts.dataDir);
  // SqliteBackend makes a database where there is none: a mistyped directory would migrate an empty cluster
  if (!existsSync(join(dataDir, "vipmesh.db"))) throw new Error(`${dataDir} holds no SQLite store (vipmesh.db): --data-dir is the manager's`);
  const storeKey = m.readStoreKey(resolve(opts.storeKey));
  const tls = opts.etcdTlsDir ? m.readEtcdTls(resolve(opts.etcdTlsDir)) : undefined;
  const sqlite = new m.SqliteBackend(dataDir);
  const state = await sqlite.load().finally(() => sqlite.close());
  const caDir = m.tlsDirs(dataDir).ca;
  for (const [setting, file] of Object.entries(CA_FILES)) {
    try {
      state.settings[setting] = readFileSync(join(caDir, file), "utf8");
    } catch (err) {
      throw new Error(`cannot read the cluster CA's ${file} in ${caDir}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const etcd = new m.EtcdBackend({ endpoints: opts.endpoints, tls, storeKey });
  await etcd.importState(state).finally(() => etcd.close());
  const objects = Object.values(state.objects).reduce((n, list) => n + list.length, 0);
  return (
    `migrated version ${state.version}: ${objects} objects and ${Object.keys(state.settings).length} settings (the CA's among them) into etcd at ${opts.endpoints.join(", ")}\n` +
    `start the managers with --store etcd and this store key; ${dataDir} is no longer the cluster's store (keep it as a backup)\n`
  );
}
