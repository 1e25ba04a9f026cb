// The one table from domain error codes to gRPC status codes (and back, for clients).

import { status, type ServiceError, type StatusObject, Metadata } from "@grpc/grpc-js";
import { type ErrorCode, NODE_REMOVED, VipmeshError } from "@vipmesh/core";

const TABLE: Record<ErrorCode, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  already_exists: status.ALREADY_EXISTS,
  not_found: status.NOT_FOUND,
  failed_precondition: status.FAILED_PRECONDITION,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  aborted: status.ABORTED,
  unavailable: status.UNAVAILABLE,
  unauthenticated: status.UNAUTHENTICATED,
  permission_denied: status.PERMISSION_DENIED,
};

export function grpcStatusOf(code: ErrorCode): status {
  return TABLE[code];
}

/** Turns anything thrown by domain code into a status object; unknown errors are INTERNAL. */
export function toStatus(err: unknown): Partial<StatusObject> {
  if (err instanceof VipmeshError) return { code: TABLE[err.code], details: err.message, metadata: new Metadata() };
  const message = err instanceof Error ? err.message : String(err);
  return { code: status.INTERNAL, details: `internal error: ${message}`, metadata: new Metadata() };
}

/** The status name, e.g. "INVALID_ARGUMENT", for people and tests. */
export const statusName = (code: number | undefined): string =>
  code === undefined ? "UNKNOWN" : (status[code] ?? String(code));

export const isServiceError = (e: unknown): e is ServiceError =>
  e instanceof Error && typeof (e as Partial<ServiceError>).code === "number";

/** Whether the manager refused a call because the caller's node was removed (core's nodeRemoved): retrying cannot help. */
export const isNodeRemoved = (e: unknown): boolean =>
  isServiceError(e) && e.code === status.PERMISSION_DENIED && e.details.includes(NODE_REMOVED);

/**
 * Whether a call failed because no connection to the manager could be made
 * (none listening, no route, a socket that is not there): it never reached a
 * manager, so another may be asked, even for a change. A manager's own
 * UNAVAILABLE (no etcd quorum, say) and a connection dropped during the call are not.
 */
export const isUnreachable = (e: unknown): boolean =>
  isServiceError(e) && e.code === status.UNAVAILABLE && /^(No connection established|Failed to connect)/.test(e.details);

/** `fn` against each manager in turn until one is reached; the error of the first reached, or of the last when none was. */
export async function firstReachable<T>(addresses: readonly string[], fn: (address: string) => Promise<T>): Promise<T> {
  let last: unknown = new Error("no manager address given");
  for (const address of addresses) {
    try {
      return await fn(address);
    } catch (err) {
      if (!isUnreachable(err)) throw err;
      last = err;
    }
  }
  throw last;
}
