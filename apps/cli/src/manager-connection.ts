// One client connection to the manager per command, with a deadline on every
// unary call and gRPC failures turned into messages that name the manager.

import { type ServiceError, status } from "@grpc/grpc-js";
import { type ClusterServiceClient, call, clusterClient, isServiceError, statusName } from "@vipmesh/api";
import { formatDuration } from "./duration.ts";
import { CommandFailed } from "./errors.ts";
import type { ManagerTarget } from "./host.ts";

export const UNARY_DEADLINE_MS = 5000;

type UnaryCall<K extends keyof ClusterServiceClient> = typeof call<ClusterServiceClient, K>;

export class ManagerConnection {
  readonly client: ClusterServiceClient;
  readonly address: string;

  constructor(target: ManagerTarget) {
    this.address = target.address;
    this.client = clusterClient(target.address, target.credentials);
  }

  /** A unary call; failures come back as CommandFailed with a message for people. */
  async call<K extends keyof ClusterServiceClient>(
    method: K,
    req: Parameters<UnaryCall<K>>[2],
  ): Promise<Awaited<ReturnType<UnaryCall<K>>>> {
    try {
      // waitForReady is off by default in grpc-js: an unreachable manager fails fast.
      return await call(this.client, method, req, { deadline: Date.now() + UNARY_DEADLINE_MS });
    } catch (err) {
      throw this.failure(err);
    }
  }

  /** gRPC errors become CommandFailed; anything else is passed through unchanged. */
  failure(err: unknown): unknown {
    return isServiceError(err) ? new CommandFailed(describeManagerError(err, this.address)) : err;
  }

  close(): void {
    this.client.close();
  }
}

// grpc-js's own words for a connection that could not be made or was lost.
const CONNECTION_FAILURE =
  /^(No connection established|Connection dropped|Failed to connect)|ECONNREFUSED|ENOENT|ECONNRESET|EHOSTUNREACH|ENETUNREACH/;

export function describeManagerError(err: Pick<ServiceError, "code" | "details">, address: string): string {
  if (err.code === status.DEADLINE_EXCEEDED) {
    return `the vipmesh manager at ${address} did not answer within ${formatDuration(UNARY_DEADLINE_MS)}`;
  }
  if (err.code === status.UNAVAILABLE && CONNECTION_FAILURE.test(err.details)) {
    const reason = err.details
      .replace(/^No connection established\. Last error: (Error: )?/, "")
      .replace(/\.? Resolution note:.*$/, "")
      .replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)$/, "");
    return `cannot reach the vipmesh manager at ${address} (${reason}); is it running? Pass --host or set VIPMESH_HOST`;
  }
  return err.details || statusName(err.code);
}

/** Runs `fn` with a connection to the manager, closing it afterwards so the process can exit. */
export async function withConnection<T>(target: ManagerTarget, fn: (conn: ManagerConnection) => Promise<T>): Promise<T> {
  const conn = new ManagerConnection(target);
  try {
    return await fn(conn);
  } finally {
    conn.close();
  }
}
