// A service's (or one task's) logs as Docker streams them: multiplexed frames
// (8-byte header: stream 1|2, three zero bytes, big-endian length), one line
// per frame — the docker CLI parses each frame as a line — optionally
// prefixed by a timestamp and by the details it reads the task, service and
// node from (moby's ServiceLogs: sorted `k=v` attributes, query-escaped).
//
// vipmesh's agents keep a task's output as one stream, without times: it goes
// out as stdout (a request for stderr alone gets only errors), and a line's
// timestamp is when the manager relayed it, so `since` cannot be honoured.

import { type Ctx, HttpError } from "../http.ts";
import type { LogChunk } from "../ops.ts";

const STDOUT = 1;
const STDERR = 2;

/** Docker's stream framing. */
export function frame(stream: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/** RFC 3339 with nanoseconds, fixed width (moby's RFC3339NanoFixed). */
export const rfc3339NanoFixed = (d: Date): string => d.toISOString().replace(/\.(\d{3})Z$/, ".$1000000Z");

/** moby's details: the task's context, sorted by key, values query-escaped, comma-separated. */
export const logDetails = (c: { nodeId: string; serviceId: string; taskId: string }): string =>
  [
    ["com.docker.swarm.node.id", c.nodeId],
    ["com.docker.swarm.service.id", c.serviceId],
    ["com.docker.swarm.task.id", c.taskId],
  ]
    .map(([k, v]) => `${k}=${encodeURIComponent(v!)}`)
    .join(",");

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
  const details = flag(q, "details");
  const timestamps = flag(q, "timestamps");
  const res = ctx.res;

  /** A line's prefix: timestamp, then details, each followed by a space (the CLI splits on them). */
  const prefix = (c: LogChunk): string =>
    (timestamps ? `${rfc3339NanoFixed(new Date())} ` : "") + (details ? `${logDetails({ nodeId: c.nodeId, serviceId, taskId: c.taskId })} ` : "");
  const send = (stream: number, c: LogChunk, line: Buffer) => {
    if (!res.writableEnded) res.write(frame(stream, Buffer.concat([Buffer.from(prefix(c)), line])));
  };

  // a task's output comes in pieces: whole lines go out, the rest waits for its end
  const partial = new Map<string, { chunk: LogChunk; rest: Buffer }>();
  const sendLines = (c: LogChunk, data: Buffer) => {
    let buf = Buffer.concat([partial.get(c.taskId)?.rest ?? Buffer.alloc(0), data]);
    for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10)) {
      if (stdout) send(STDOUT, c, buf.subarray(0, nl + 1));
      buf = buf.subarray(nl + 1);
    }
    partial.set(c.taskId, { chunk: c, rest: buf });
  };
  const flush = () => {
    for (const { chunk, rest } of partial.values()) if (rest.length > 0 && stdout) send(STDOUT, chunk, Buffer.concat([rest, Buffer.from("\n")]));
    partial.clear();
  };

  res.writeHead(200, { "Content-Type": "application/vnd.docker.multiplexed-stream" });
  // the headers go now: the CLI waits for them before it prints anything
  res.flushHeaders();
  const cancel = ctx.ops.serviceLogs(
    { service: serviceId, follow: flag(q, "follow"), tail: tailOf(q) },
    {
      write(c) {
        if (taskId && c.taskId !== taskId) return;
        if (c.data) sendLines(c, c.data);
        if (c.error) send(STDERR, c, Buffer.from(`error: ${c.error}\n`));
      },
      end() {
        flush();
        res.end();
      },
    },
  );
  // the client went (Ctrl-C on logs -f): stop asking the agents
  res.on("close", cancel);
}
