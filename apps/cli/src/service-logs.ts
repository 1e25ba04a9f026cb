// `vipmesh service logs`: the manager's stream of task output, printed as
// docker prints it, each line after its task's name and node:
// `web.1.3f9c0a7e21b4@node2    | GET / 200` (with --timestamps, the time its
// task's shim read the line first). Lines come in task-log.ts's form.

import { StringDecoder } from "node:string_decoder";
import { InvalidArgumentError } from "commander";
import { parseTaskLogLine, sinceTime, type wire } from "@vipmesh/api";
import { taskName } from "@vipmesh/core";
import { AlreadyReported } from "./errors.ts";
import type { Io } from "./io.ts";
import type { ManagerConnection } from "./manager-connection.ts";
import { nextSignal } from "./signals.ts";
import { shortId } from "./table.ts";

/** `web.1.3f9c0a7e21b4@node2`; a global service's task is named by its node ID instead of a slot. */
export const taskLogName = (t: Pick<wire.Task, "id" | "serviceName" | "slot" | "nodeId">, hostname: string): string =>
  `${taskName(t)}.${shortId(t.id)}@${hostname}`;

const SEPARATOR = "    | ";

/**
 * Turns the interleaved chunks of many tasks' output into whole lines, each
 * after its task's prefix. A task's unfinished line waits for its end (or for
 * `flush`), so the lines of tasks never mix, and a character split between
 * chunks is put back together.
 */
export interface LogPrintOptions {
  /** Each line after the time it was logged (a raw line has none: nothing). */
  timestamps?: boolean;
}

export class LogPrinter {
  private readonly pending = new Map<string, { decoder: StringDecoder; text: string }>();

  constructor(
    private readonly prefixOf: (taskId: string) => string,
    private readonly options: LogPrintOptions = {},
  ) {}

  /** The lines this chunk completes, prefixed; "" when it completes none. */
  push(taskId: string, data: Buffer): string {
    let p = this.pending.get(taskId);
    if (!p) this.pending.set(taskId, (p = { decoder: new StringDecoder("utf8"), text: "" }));
    const text = p.text + p.decoder.write(data);
    const end = text.lastIndexOf("\n");
    p.text = text.slice(end + 1);
    return end === -1 ? "" : this.prefixed(taskId, text.slice(0, end));
  }

  /** Every task's unfinished last line, ended. */
  flush(): string {
    let out = "";
    for (const [taskId, p] of this.pending) {
      const rest = p.text + p.decoder.end();
      p.text = "";
      if (rest) out += this.prefixed(taskId, rest);
    }
    return out;
  }

  private prefixed(taskId: string, lines: string): string {
    const prefix = this.prefixOf(taskId) + SEPARATOR;
    return lines
      .split("\n")
      .map(parseTaskLogLine)
      .map((line) => `${this.options.timestamps && line.time ? `${line.time} ` : ""}${prefix}${line.text}\n`)
      .join("");
  }
}

export interface ServiceLogsOptions extends LogPrintOptions {
  follow: boolean;
  /** Per task: only the last `tail` lines; 0 = all. */
  tail: number;
  /** Only lines logged at or after this time (task-log.ts's form); "" or absent: all. The agents filter. */
  since?: string;
}

/**
 * `--since` as docker takes it: a duration before now (`10m`, `1.5h`), unix
 * seconds or RFC 3339; in task-log.ts's time form. Throws on anything else.
 */
export function parseSinceFlag(value: string, now = new Date()): string {
  const d = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value.trim());
  if (d) {
    const ms = Number(d[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[d[2] as "ms" | "s" | "m" | "h"];
    return sinceTime(new Date(now.getTime() - ms).toISOString())!;
  }
  const since = sinceTime(value);
  if (since === undefined) throw new InvalidArgumentError("expected a duration (10m), unix seconds or RFC 3339");
  return since;
}

/**
 * Prints the service's logs to stdout until the manager ends the stream (at
 * once without follow) or SIGINT/SIGTERM ends a follow. A task whose log
 * could not be had is reported on stderr, and the command then fails.
 */
export async function printServiceLogs(conn: ManagerConnection, io: Io, service: string, options: ServiceLogsOptions): Promise<void> {
  const [{ tasks }, { nodes }] = await Promise.all([conn.call("listTasks", { service }), conn.call("listNodes", {})]);
  const hostnames = new Map(nodes.map((n) => [n.id, n.description?.hostname || shortId(n.id)]));
  const names = new Map(tasks.map((t) => [t.id, taskLogName(t, hostnames.get(t.nodeId) ?? shortId(t.nodeId))]));
  const width = Math.max(0, ...[...names.values()].map((n) => n.length));
  const nameOf = (taskId: string) => names.get(taskId) ?? shortId(taskId);
  const printer = new LogPrinter((taskId) => nameOf(taskId).padEnd(width), { timestamps: options.timestamps });

  let unavailable = false;
  await new Promise<void>((resolve, reject) => {
    const stream = conn.client.serviceLogs({ service, follow: options.follow, tail: options.tail, since: options.since ?? "" });
    const stop = nextSignal();
    let settled = false;
    const finish = (failure?: unknown) => {
      if (settled) return;
      settled = true;
      stop.cancel();
      stream.cancel(); // our own cancel surfaces as a CANCELLED error, ignored once settled
      const rest = printer.flush();
      if (rest) io.stdout(rest);
      if (failure === undefined) resolve();
      else reject(failure);
    };
    void stop.received.then(() => finish());
    stream.on("data", (chunk: wire.LogChunk) => {
      if (chunk.data.length > 0) {
        const lines = printer.push(chunk.taskId, chunk.data);
        if (lines) io.stdout(lines);
      }
      if (chunk.error) {
        unavailable = true;
        io.stderr(`Error: ${nameOf(chunk.taskId)}: ${chunk.error}\n`);
      }
    });
    stream.on("error", (err) => finish(conn.failure(err)));
    stream.on("end", () => finish());
  });
  if (unavailable) throw new AlreadyReported();
}
