// A service's (or one task's) logs as Docker streams them: multiplexed frames
// (8-byte header: stream 1|2, three zero bytes, big-endian length), one line
// per frame — the docker CLI parses each frame as a line — optionally
// prefixed by a timestamp and by the details it reads the task, service and
// node from (moby's ServiceLogs: sorted `k=v` attributes, query-escaped).
//
// The agents send whole lines in task-log.ts's form: each goes out on its
// own stream with the time its task's shim read it; a raw line (an old log,
// confinement's own failure) as stdout, timed when relayed. `since` is
// passed down: the agents filter.

import { formatTaskLogLine, logTime, parseTaskLogBytes, sinceTime } from "@vipmesh/api";
import { type Ctx, HttpError } from "../http.ts";
import type { LogChunk, LogRequest } from "../ops.ts";

const STDOUT = 1;
const STDERR = 2;

/** Docker's stream framing. */
export function frame(stream: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/** moby's details: the task's context, sorted by key, values query-escaped, comma-separated. */
export const logDetails = (c: { nodeId: string; serviceId: string; taskId: string }): string =>
  [
    ["com.docker.swarm.node.id", c.nodeId],
    ["com.docker.swarm.service.id", c.serviceId],
    ["com.docker.swarm.task.id", c.taskId],
  ]
    .map(([k, v]) => `${k}=${encodeURIComponent(v!)}`)
    .join(",");

export interface LineFraming {
  stdout: boolean;
  stderr: boolean;
  timestamps: boolean;
  /** The details prefix (logDetails), when asked for. */
  details?: string;
}

/** One task log line (task-log.ts's form, or raw) as Docker's frame; undefined when its stream was not asked for. */
export function frameLogLine(line: Buffer, o: LineFraming): Buffer | undefined {
  const { time, stream, text } = parseTaskLogBytes(line);
  if (!(stream === "stderr" ? o.stderr : o.stdout)) return undefined;
  // a timestamp, then details, each followed by a space (the CLI splits on them)
  const prefix = (o.timestamps ? `${time || logTime(new Date())} ` : "") + (o.details !== undefined ? `${o.details} ` : "");
  return frame(stream === "stderr" ? STDERR : STDOUT, Buffer.concat([Buffer.from(prefix), text, Buffer.from("\n")]));
}

const flag = (q: URLSearchParams, name: string): boolean => ["1", "true"].includes(q.get(name) ?? "");

/** `tail`: "all" or a number of lines per task (Docker treats a bad one as all). */
function tailOf(q: URLSearchParams): number {
  const n = Number(q.get("tail") ?? "all");
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/** Streams the logs of `serviceId`'s tasks (only `taskId`'s when given) until they end or the client goes. */
export function streamLogs(ctx: Ctx, serviceId: string, taskId?: string): void {
  const q = ctx.query;
  const stdout = flag(q, "stdout");
  const stderr = flag(q, "stderr");
  if (!stdout && !stderr) throw new HttpError(400, "Bad parameters: you must choose at least one stream");
  const since = sinceTime(q.get("since") ?? "");
  if (since === undefined) throw new HttpError(400, `invalid value for "since": ${q.get("since")}`);
  const details = flag(q, "details");
  const timestamps = flag(q, "timestamps");
  const res = ctx.res;

  const framing = (c: LogChunk): LineFraming => ({
    stdout,
    stderr,
    timestamps,
    ...(details ? { details: logDetails({ nodeId: c.nodeId, serviceId, taskId: c.taskId }) } : {}),
  });
  const send = (c: LogChunk, line: Buffer) => {
    const f = frameLogLine(line, framing(c));
    if (f && !res.writableEnded) res.write(f);
  };

  // agents send whole lines; should a piece still end mid-line, the rest waits for the task's next piece or its end
  const partial = new Map<string, { chunk: LogChunk; rest: Buffer }>();
  const sendLines = (c: LogChunk, data: Buffer) => {
    let buf = Buffer.concat([partial.get(c.taskId)?.rest ?? Buffer.alloc(0), data]);
    for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10)) {
      send(c, buf.subarray(0, nl + 1));
      buf = buf.subarray(nl + 1);
    }
    partial.set(c.taskId, { chunk: c, rest: buf });
  };
  const flush = () => {
    for (const { chunk, rest } of partial.values()) if (rest.length > 0) send(chunk, rest);
    partial.clear();
  };

  res.writeHead(200, { "Content-Type": "application/vnd.docker.multiplexed-stream" });
  // the headers go now: the CLI waits for them before it prints anything
  res.flushHeaders();
  const request: LogRequest = { service: serviceId, follow: flag(q, "follow"), tail: tailOf(q), ...(since ? { since } : {}), ...(taskId ? { taskIds: [taskId] } : {}) };
  const cancel = ctx.ops.serviceLogs(request, {
    write(c) {
      if (c.data) sendLines(c, c.data);
      // why a task's log cannot be had: on stderr whichever streams were asked for
      if (c.error) {
        const f = frameLogLine(Buffer.from(formatTaskLogLine(logTime(new Date()), "stderr", `error: ${c.error}`)), { ...framing(c), stderr: true });
        if (f && !res.writableEnded) res.write(f);
      }
    },
    end() {
      flush();
      res.end();
    },
  });
  // the client went (Ctrl-C on logs -f): stop asking the agents
  res.on("close", cancel);
}
