// Domain errors carry a code; apps/api maps each code to one gRPC status.

export type ErrorCode =
  | "invalid_argument"
  | "already_exists"
  | "not_found"
  | "failed_precondition"
  | "resource_exhausted"
  | "aborted"
  | "unavailable"
  | "unauthenticated"
  | "permission_denied";

export class VipmeshError extends Error {
  override readonly name = "VipmeshError";
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export const invalid = (message: string) => new VipmeshError("invalid_argument", message);
export const notFound = (message: string) => new VipmeshError("not_found", message);
export const alreadyExists = (message: string) => new VipmeshError("already_exists", message);
export const precondition = (message: string) => new VipmeshError("failed_precondition", message);
export const exhausted = (message: string) => new VipmeshError("resource_exhausted", message);
export const unauthenticated = (message: string) => new VipmeshError("unauthenticated", message);
export const permissionDenied = (message: string) => new VipmeshError("permission_denied", message);

/** The phrase by which a removed node's agent knows it was removed (api's isNodeRemoved), not merely cut off. */
export const NODE_REMOVED = "was removed from the cluster";
/** What a removed node is refused with, whatever it calls: Register, Session, a renewal. */
export const nodeRemoved = (nodeId: string) => permissionDenied(`node ${nodeId} ${NODE_REMOVED}; join it again with a join token`);
