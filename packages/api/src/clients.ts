// Clients for both services, with promise wrappers for unary calls.

import * as grpc from "@grpc/grpc-js";
import type { ClusterServiceClient } from "./generated/vipmesh/v1/ClusterService.ts";
import type { DispatcherServiceClient } from "./generated/vipmesh/v1/DispatcherService.ts";
import { vipmeshV1 } from "./proto.ts";

export type { ClusterServiceClient, DispatcherServiceClient };

/** "host:port", "unix:/path" or "unix:///path". */
export function grpcTarget(address: string): string {
  return address.startsWith("/") ? `unix:${address}` : address;
}

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.keepalive_time_ms": 10_000,
  "grpc.keepalive_timeout_ms": 5_000,
  "grpc.keepalive_permit_without_calls": 1,
};

export function clusterClient(address: string): ClusterServiceClient {
  return new vipmeshV1.ClusterService(grpcTarget(address), grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
}

export function dispatcherClient(address: string): DispatcherServiceClient {
  return new vipmeshV1.DispatcherService(grpcTarget(address), grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
}

// the last overload of a generated unary method: (argument, callback)
// matches the generated callback type whatever its error type is called
type UnaryMethod<Req, Res> = (req: Req, cb: (err: any, value?: Res) => void) => grpc.ClientUnaryCall;
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
): Promise<C[K] extends UnaryMethod<any, infer Res> ? NonNullable<Res> : never> {
  return new Promise((resolve, reject) => {
    const fn = client[method] as unknown as UnaryImpl;
    fn.call(client, req, options, (err, res) => {
      if (err) reject(err);
      else resolve(res as never);
    });
  });
}
