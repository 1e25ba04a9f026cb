// The Engine API's request handling: version prefix, route matching, the
// caller's permission, the JSON body, and Docker-shaped errors. node:http,
// not a framework: no dependency to keep, the API is a few dozen routes, and
// log streams need the raw response (Docker's multiplexed frames, chunked).

import type { IncomingMessage, RequestListener, ServerResponse } from "node:http";
import { VipmeshError } from "@vipmesh/core";
import { type Ctx, HttpError, type Method, type Route, sendJson } from "./http.ts";
import type { ClusterOps } from "./ops.ts";
import { API_VERSION, compareVersions, MAX_API_VERSION, MIN_API_VERSION, VIPMESH_VERSION } from "./version.ts";

/** Largest JSON body taken: a service spec is a few KiB; Docker itself has no limit, a manager should. */
export const BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * Deepest JSON body taken: Docker's deepest spec field is about 6 levels down.
 * Deeper bodies would overflow the stack of whatever walks them (a 500), so
 * they are refused before parsing, as Go's decoder refuses past its own limit.
 */
export const BODY_MAX_DEPTH = 64;

/** How deep `text`'s objects and arrays nest (brackets inside strings do not count); stops counting past `max`. */
export function jsonDepth(text: string, max: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === 0x5c) i++; // a backslash: skip the escaped character
      else if (ch === 0x22) inString = false;
    } else if (ch === 0x22) inString = true;
    else if (ch === 0x7b || ch === 0x5b) {
      deepest = Math.max(deepest, ++depth);
      if (deepest > max) return deepest;
    } else if (ch === 0x7d || ch === 0x5d) depth--;
  }
  return deepest;
}

export interface EngineApiOptions {
  ops: ClusterOps;
  routes: readonly Route[];
  /** Throws (a VipmeshError: permission_denied, unauthenticated) unless the request's caller may use `route.op`. */
  authorize(req: IncomingMessage, op: string): void;
  bodyLimitBytes?: number;
}

/** Docker's status for each domain error code (moby's statusCodeFromGRPCError, where swarm's errors come from). */
const STATUS: Record<VipmeshError["code"], number> = {
  invalid_argument: 400,
  failed_precondition: 400,
  not_found: 404,
  already_exists: 409,
  permission_denied: 403,
  unauthenticated: 401,
  // a stale version: swarm answers "update out of sequence" with 500
  aborted: 500,
  unavailable: 503,
  resource_exhausted: 503,
};

/** The status and message an error becomes. */
export function errorResponse(err: unknown): { status: number; message: string } {
  if (err instanceof HttpError) return { status: err.status, message: err.message };
  if (err instanceof VipmeshError) return { status: STATUS[err.code] ?? 500, message: err.message };
  return { status: 500, message: err instanceof Error ? err.message : String(err) };
}

interface CompiledRoute {
  route: Route;
  pattern: RegExp;
  names: string[];
}

function compile(route: Route): CompiledRoute {
  const names: string[] = [];
  const source = route.path
    .split("/")
    .map((seg) => {
      const m = /^\{(\w+)(\*?)\}$/.exec(seg);
      if (!m) return seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      names.push(m[1]!);
      return m[2] ? "(.+)" : "([^/]+)";
    })
    .join("/");
  return { route, pattern: new RegExp(`^${source}$`), names };
}

/** The path without its /vNN prefix, and the version asked; an HttpError for a version out of range. */
export function stripVersion(path: string): { path: string; version: string } {
  const m = /^\/v([0-9.]+)(\/.*)$/.exec(path);
  if (!m) return { path, version: API_VERSION };
  const version = m[1]!;
  if (compareVersions(version, MIN_API_VERSION) < 0) {
    throw new HttpError(400, `client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
  }
  if (compareVersions(version, MAX_API_VERSION) > 0) {
    throw new HttpError(400, `client version ${version} is too new. Maximum supported API version is ${MAX_API_VERSION}`);
  }
  return { path: m[2]!, version };
}

/** A path parameter, %-decoded; a malformed escape is the client's mistake (400), not the server's. */
function decodePathPart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw new HttpError(400, `the path part "${part}" has a malformed %-escape`);
  }
}

/** The request's body as JSON: undefined when empty, 400 when malformed or too deep, 413 past `limit`. */
function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers["content-length"] ?? 0);
    const tooLarge = () => new HttpError(413, `the request body is larger than the Engine API's limit of ${limit / 1024} KiB`);
    if (declared > limit) {
      req.resume(); // drain, so the 413 reaches the client
      reject(tooLarge());
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > limit && !failed) {
        failed = true;
        reject(tooLarge());
      }
      if (!failed) chunks.push(c);
    });
    // the client went away mid-body: its mistake, not the server's (no 500, nothing logged)
    req.on("error", (err) => reject(new HttpError(400, `the request body was not received whole: ${err.message}`)));
    req.on("end", () => {
      if (failed) return;
      const text = Buffer.concat(chunks).toString("utf8");
      if (text.trim() === "") return resolve(undefined);
      if (jsonDepth(text, BODY_MAX_DEPTH) > BODY_MAX_DEPTH) {
        return reject(new HttpError(400, `the request body nests deeper than ${BODY_MAX_DEPTH} levels`));
      }
      try {
        resolve(JSON.parse(text));
      } catch (err) {
        reject(new HttpError(400, `the request body is not valid JSON: ${err instanceof Error ? err.message : String(err)}`));
      }
    });
  });
}

/** The request listener serving `routes`; both the unix socket's http server and the TLS one use it. */
export function engineApiHandler(options: EngineApiOptions): RequestListener {
  const routes = options.routes.map(compile);
  const limit = options.bodyLimitBytes ?? BODY_LIMIT_BYTES;
  return (req, res) => {
    res.setHeader("Api-Version", API_VERSION);
    res.setHeader("Ostype", "linux");
    res.setHeader("Docker-Experimental", "false");
    res.setHeader("Server", `vipmesh/${VIPMESH_VERSION} (linux)`);
    handle(req, res).catch((err: unknown) => fail(req, res, err));
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://engine");
    const { path, version } = stripVersion(url.pathname);
    const method = (req.method ?? "GET") as Method;
    let pathMatched = false;
    for (const { route, pattern, names } of routes) {
      const m = pattern.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== method) continue;
      options.authorize(req, route.op);
      const params: Record<string, string> = {};
      names.forEach((n, i) => (params[n] = decodePathPart(m[i + 1]!)));
      const may = (op: string) => {
        try {
          options.authorize(req, op);
          return true;
        } catch {
          return false;
        }
      };
      const ctx: Ctx = { method, path, params, query: url.searchParams, body: () => readJson(req, limit), req, res, ops: options.ops, apiVersion: version, may };
      const out = await route.handle(ctx);
      if (!res.headersSent && !res.writableEnded) sendJson(res, 200, out ?? null);
      return;
    }
    // as Docker's router: a known path with another method is 405, anything else "page not found"
    if (pathMatched) throw new HttpError(405, `${method} is not allowed on ${path}`);
    throw new HttpError(404, "page not found");
  }

  function fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const { status, message } = errorResponse(err);
    if (status === 500 && !(err instanceof VipmeshError)) console.error(`engine-api: ${req.method} ${req.url}: ${err instanceof Error ? (err.stack ?? message) : message}`);
    if (res.headersSent) {
      res.destroy(); // a stream that broke half-way: the client sees it end early
      return;
    }
    // a body not read (to its end) is left to node, which reads and drops it after the
    // response: closing the connection instead would break the client's write of it (EPIPE)
    sendJson(res, status, { message });
  }
}
