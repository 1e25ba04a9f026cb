// Who may call what. The TLS handshake asks every client for a certificate
// but lets one without through (a joining node has none yet); this
// interceptor then decides per method, before any handler runs:
//
//   - no certificate signed by the cluster's CA → UNAUTHENTICATED, except
//     for the CA calls a joining node or manager makes;
//   - a certificate whose role may not call the method, or a removed node's
//     → PERMISSION_DENIED.
//
// A method missing from the table is refused: new methods are closed until
// someone decides who may call them.

import * as grpc from "@grpc/grpc-js";
import type { IncomingMessage } from "node:http";
import type { TLSSocket } from "node:tls";
import { toStatus } from "@vipmesh/api";
import { permissionDenied, unauthenticated } from "@vipmesh/core";
import { type CertIdentity, identityOfSubject, type Role } from "@vipmesh/pki";
import type { CertificateAuthority } from "./certificate-authority.ts";

type Access = "anyone" | readonly Role[];

const NODES: readonly Role[] = ["worker", "manager"];
const WRITERS: readonly Role[] = ["admin", "manager"];
const READERS: readonly Role[] = ["admin", "manager", "readonly"];

const CLUSTER_READS = ["InspectNetwork", "ListNetworks", "InspectService", "ListServices", "WatchServiceConvergence", "ListNodes", "InspectNode", "ListManagers", "ListTasks", "Watch", "ListImages"];
const CLUSTER_WRITES = ["CreateNetwork", "RemoveNetwork", "CreateService", "UpdateService", "RollbackService", "RemoveService", "UpdateNode", "RemoveNode", "ServiceLogs", "GetJoinToken", "LoadImage", "RemoveImage"];

export const POLICY: ReadonlyMap<string, Access> = new Map<string, Access>([
  ["/vipmesh.v1.CaService/GetRootCa", "anyone"],
  ["/vipmesh.v1.CaService/Join", "anyone"],
  ["/vipmesh.v1.CaService/JoinManager", "anyone"],
  ["/vipmesh.v1.CaService/RenewCertificate", ["worker", "manager", "admin", "readonly"]],
  ["/vipmesh.v1.DispatcherService/Register", NODES],
  ["/vipmesh.v1.DispatcherService/Session", NODES],
  ...CLUSTER_READS.map((m) => [`/vipmesh.v1.ClusterService/${m}`, READERS] as const),
  ...CLUSTER_WRITES.map((m) => [`/vipmesh.v1.ClusterService/${m}`, WRITERS] as const),
]);

/** Any call: what TLS verified of its peer. */
export interface AuthContextCall {
  getAuthContext: grpc.ServerUnaryCall<unknown, unknown>["getAuthContext"];
}

/** The caller's identity: its certificate's, when it has one the TLS layer verified against the cluster's CA. */
export function callerOf(call: AuthContextCall): CertIdentity | undefined {
  return identityOfSubject(call.getAuthContext()?.sslPeerCertificate?.subject);
}

/** The caller's IP address ("" on a unix socket, where grpc-js says "unknown"); an IPv4-mapped IPv6 address as IPv4. */
export function sourceAddressOf(call: { getPeer(): string }): string {
  const peer = call.getPeer();
  return peer === "unknown" ? "" : peer.replace(/:\d+$/, "").replace(/^::ffff:/, "");
}

/** The caller, if it may call `path`; throws the status to answer otherwise. */
export function authorize(path: string, caller: CertIdentity | undefined, ca: Pick<CertificateAuthority, "checkNotRevoked">): void {
  const access = POLICY.get(path);
  if (access === "anyone") return;
  if (!caller) throw unauthenticated("this call needs a client certificate signed by the cluster's CA (vipmesh --tls-dir DIR, or VIPMESH_TLS_DIR)");
  if (!access?.includes(caller.role)) {
    throw permissionDenied(`a ${caller.role} certificate may not call ${path.split("/").pop()}`);
  }
  ca.checkNotRevoked(caller);
}

/** The server interceptor that runs `authorize` on every call's metadata, before its handler. */
export function authInterceptor(ca: CertificateAuthority): grpc.ServerInterceptor {
  return (method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            try {
              authorize(method.path, callerOf(call), ca);
            } catch (err) {
              call.sendStatus(toStatus(err) as grpc.StatusObject);
              return;
            }
            mdNext(metadata);
          },
        }),
    });
}

/**
 * The Engine API's check on its TLS listener: the route's op is decided by the
 * same POLICY as the gRPC method of that name, for the client certificate's
 * role (the TLS layer already refused a client without one of the cluster's).
 */
export function authorizeEngineApi(ca: Pick<CertificateAuthority, "checkNotRevoked">) {
  return (req: IncomingMessage, op: string): void => {
    const socket = req.socket as TLSSocket;
    authorize(`/vipmesh.v1.ClusterService/${op}`, identityOfSubject(socket.getPeerCertificate?.()?.subject), ca);
  };
}
