// What every client command needs: the manager connection and output helpers.

import type { Command } from "commander";
import { resolveManagerAddress } from "../host.ts";
import type { Io } from "../io.ts";
import { type ManagerConnection, withConnection } from "../manager-connection.ts";
import { formatTable } from "../table.ts";

/** Connects to the manager named by --host or VIPMESH_HOST for the duration of `fn`. */
export function withManager<T>(io: Io, cmd: Command, fn: (conn: ManagerConnection) => Promise<T>): Promise<T> {
  const { host } = cmd.optsWithGlobals<{ host?: string }>();
  return withConnection(resolveManagerAddress({ flag: host, env: io.env, cwd: process.cwd(), labs: io.labs() }), fn);
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
