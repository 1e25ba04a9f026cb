// What every client command needs: the manager connection and output helpers.

import type { Command } from "commander";
import { parseDuration } from "../duration.ts";
import { UsageError } from "../errors.ts";
import { type HostSources, resolveManager } from "../host.ts";
import type { Io } from "../io.ts";
import { type ManagerConnection, withConnection } from "../manager-connection.ts";
import { formatTable } from "../table.ts";

/** Where --host, --tls-dir and --insecure (or the environment, or a running lab) say the manager is, and how to show who we are. */
export function managerSources(io: Io, cmd: Command): HostSources {
  const { host, tlsDir, insecure } = cmd.optsWithGlobals<{ host?: string; tlsDir?: string; insecure?: boolean }>();
  return { flag: host, tlsDir, insecure, env: io.env, cwd: process.cwd(), labs: io.labs() };
}

/** --call-timeout, else $VIPMESH_CALL_TIMEOUT; undefined: each call's own default. */
export function callTimeout(io: Io, cmd: Command): number | undefined {
  const { callTimeout: flag } = cmd.optsWithGlobals<{ callTimeout?: string }>();
  const [text, source] = flag !== undefined ? [flag, "--call-timeout"] : [io.env.VIPMESH_CALL_TIMEOUT, "VIPMESH_CALL_TIMEOUT"];
  if (!text) return undefined;
  let ms: number;
  try {
    ms = parseDuration(text);
  } catch (err) {
    throw new UsageError(`${source}: ${(err as Error).message}`);
  }
  if (ms <= 0) throw new UsageError(`${source}: give the manager some time, like 30s or 2m`);
  return ms;
}

/** Connects to the manager for the duration of `fn`. */
export function withManager<T>(io: Io, cmd: Command, fn: (conn: ManagerConnection) => Promise<T>): Promise<T> {
  return withConnection(resolveManager(managerSources(io, cmd)), fn, { timeoutMs: callTimeout(io, cmd), warn: io.stderr });
}

export interface ListOptions {
  json?: boolean;
  quiet?: boolean;
}

export function addListOptions(cmd: Command): Command {
  return cmd.option("--json", "print one JSON array").option("-q, --quiet", "print IDs only");
}

/** An `ls`: JSON array, IDs only, or a table for people. */
export function printList<T extends { id: string }>(
  io: Io,
  opts: ListOptions,
  items: readonly T[],
  view: { json: (item: T) => unknown; headers: readonly string[]; rows: (items: readonly T[]) => string[][] },
): void {
  if (opts.json) io.stdout(`${JSON.stringify(items.map(view.json), null, 2)}\n`);
  else if (opts.quiet) io.stdout(items.map((i) => `${i.id}\n`).join(""));
  else io.stdout(formatTable(view.headers, view.rows(items)));
}
