// Clients for both services, with promise wrappers for unary calls.

import * as grpc from "@grpc/grpc-js";
import type { CaServiceClient } from "./generated/vipmesh/v1/CaService.ts";
import type { ClusterServiceClient } from "./generated/vipmesh/v1/ClusterService.ts";
import type { DispatcherServiceClient } from "./generated/vipmesh/v1/DispatcherService.ts";
import { MANAGER_SERVER_NAME } from "@vipmesh/pki";
import { vipmeshV1 } from "./proto.ts";
import { RECONNECT_MAX_BACKOFF_MS, RECONNECT_MIN_BACKOFF_MS } from "./session-timing.ts";
import { channelCredentials, type ClientCredentials } from "./tls.ts";

export type { CaServiceClient, ClusterServiceClient, DispatcherServiceClient };

/** "host:port", "unix:/path" or "unix:///path". */
export function grpcTarget(address: string): string {
  return address.startsWith("/") ? `unix:${address}` : address;
}

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // the TLS server name: every manager certificate carries it (managers are reached by address; an IP is no SNI)
  "grpc.ssl_target_name_override": MANAGER_SERVER_NAME,
  // whole views and lists come down in one message: megabytes at tens of thousands of services
  "grpc.max_receive_message_length": 256 * 1024 * 1024,
  // HTTP/2's 64 KiB window makes a list of megabytes a round trip per 64 KiB, each waiting a turn of a busy manager's loop
  "grpc-node.flow_control_window": 16 * 1024 * 1024,
  "grpc.keepalive_time_ms": 10_000,
  "grpc.keepalive_timeout_ms": 5_000,
  "grpc.keepalive_permit_without_calls": 1,
  // grpc-js waits up to 2 min between connection attempts after failures; callers keep their own backoff
  // (an agent's: session-timing.ts), so the channel must be ready to connect when they call again
  "grpc.initial_reconnect_backoff_ms": RECONNECT_MIN_BACKOFF_MS,
  "grpc.max_reconnect_backoff_ms": RECONNECT_MAX_BACKOFF_MS,
};

export interface ClientOptions {
  /**
   * A connection of the client's own. grpc-js otherwise shares one HTTP/2
   * connection between all clients of a process for the same target, which is
   * right for one agent or one CLI, not for many simulated agents in one process.
   */
  ownConnection?: boolean;
  /** Run on every call of the client (staleReads, say). */
  interceptors?: grpc.Interceptor[];
}

const channelOptions = (o: ClientOptions): grpc.ClientOptions => ({
  ...CHANNEL_OPTIONS,
  ...(o.ownConnection ? { "grpc.use_local_subchannel_pool": 1 } : {}),
  ...(o.interceptors ? { interceptors: o.interceptors } : {}),
});

export function clusterClient(address: string, credentials: ClientCredentials, options: ClientOptions = {}): ClusterServiceClient {
  return new vipmeshV1.ClusterService(grpcTarget(address), channelCredentials(credentials), channelOptions(options));
}

/**
 * The response metadata of a read a manager answered from its cache while
 * it could not reach the store's quorum; its value says why.
 */
export const STALE_METADATA = "vipmesh-stale";

/** An interceptor that calls `onStale` with the reason of every answer marked STALE_METADATA (in its headers or trailers). */
export function staleReads(onStale: (reason: string) => void): grpc.Interceptor {
  const check = (metadata: grpc.Metadata) => {
    const [reason] = metadata.get(STALE_METADATA);
    if (reason !== undefined) onStale(String(reason));
  };
  return (options, nextCall) =>
    new grpc.InterceptingCall(nextCall(options), {
      start: (metadata, _listener, next) =>
        next(metadata, {
          onReceiveMetadata: (md, nextMd) => (check(md), nextMd(md)),
          onReceiveStatus: (s, nextStatus) => (check(s.metadata), nextStatus(s)),
        }),
    });
}

export function dispatcherClient(address: string, credentials: ClientCredentials, options: ClientOptions = {}): DispatcherServiceClient {
  return new vipmeshV1.DispatcherService(grpcTarget(address), channelCredentials(credentials), channelOptions(options));
}

export function caClient(address: string, credentials: ClientCredentials, options: ClientOptions = {}): CaServiceClient {
  return new vipmeshV1.CaService(grpcTarget(address), channelCredentials(credentials), channelOptions(options));
}

// the last overload of a generated unary method: (argument, callback)
// matches the generated callback type whatever its error type is called
type UnaryMethod<Req, Res> = (req: Req, cb: (err: unknown, value?: Res) => void) => grpc.ClientUnaryCall;
type UnaryImpl = (
  req: unknown,
  options: grpc.CallOptions,
  cb: (err: grpc.ServiceError | null, res?: unknown) => void,
) => grpc.ClientUnaryCall;

/** Calls a unary method and resolves with its response: `await call(client, "listNodes", {})`. */
export function call<C extends grpc.Client, K extends keyof C>(
  client: C,
  method: K,
  req: C[K] extends UnaryMethod<infer Req, unknown> ? Req : never,
  options: grpc.CallOptions = {},
): Promise<C[K] extends UnaryMethod<never, infer Res> ? NonNullable<Res> : never> {
  return new Promise((resolve, reject) => {
    const fn = client[method] as unknown as UnaryImpl;
    fn.call(client, req, options, (err, res) => {
      if (err) reject(err);
      else resolve(res as never);
    });
  });
}
