// The contract between the server (server.ts) and the routes (routes/): a
// route names its method, its path with {params}, and the gRPC method whose
// permission it needs; the server authorizes it with the gRPC POLICY, parses,
// and maps whatever it throws to Docker's {"message": …} errors.

import type { IncomingMessage, ServerResponse } from "node:http";
import type { ClusterOps } from "./ops.ts";

export type Method = "GET" | "POST" | "DELETE" | "HEAD";

export interface Ctx {
  method: Method;
  /** Without the /v1.NN prefix. */
  path: string;
  /** The path's {params}, decoded. */
  params: Record<string, string>;
  query: URLSearchParams;
  /** The parsed JSON body (undefined when empty); 400 when malformed, 413 past the limit. */
  body(): Promise<unknown>;
  req: IncomingMessage;
  /** For 201/204 and streams: a route that writes here itself returns undefined. */
  res: ServerResponse;
  ops: ClusterOps;
  /** The API version the client asked for ("1.47" when it gave none). */
  apiVersion: string;
  /** Whether the caller may also use `op` (a route that shows more to writers: /swarm's join tokens). */
  may(op: string): boolean;
}

export interface Route {
  method: Method;
  /**
   * "/services/{id}/update": a {param} matches one path segment; the last
   * param may be written {name*} to match the rest (image names have slashes).
   */
  path: string;
  /** The gRPC ClusterService method whose permission the route needs, e.g. "UpdateService" (authz POLICY). */
  op: string;
  /**
   * What it returns is sent as JSON with 200; a route that answers through
   * ctx.res (201, 204, a stream) returns undefined after writing.
   */
  handle(ctx: Ctx): Promise<unknown> | unknown;
}

/** Sends `body` as JSON with `status`. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = Buffer.from(JSON.stringify(body));
  res.writeHead(status, { "Content-Type": "application/json", "Content-Length": data.length });
  res.end(data);
}

/** 204, no body (Docker's DELETE). */
export function sendNoContent(res: ServerResponse): void {
  res.writeHead(204);
  res.end();
}

/** An error with Docker's status code: for what has no VipmeshError code (413, 405). */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
