// Task logs with several managers: an agent answers log requests over its
// session, which any manager may hold. A node whose session is here is asked
// directly (the dispatcher's LogRelay); one held by another manager is asked
// through that manager's ServiceLogs, restricted to the node's tasks and to its
// own sessions (local_only), with this manager's certificate.

import type * as grpc from "@grpc/grpc-js";
import { clusterClient, type ClientCredentials, type LogPiece, type LogRequest, type wire } from "@vipmesh/api";
import type { LogRelay } from "../log-relay.ts";
import type { ClusterStore } from "../store/cluster-store.ts";
import type { ManagerInfo } from "./directory.ts";

/** What relayServiceLogs needs: a node's part of a log request. */
export type NodeLogs = Pick<LogRelay, "request">;

export class PeerLogRelay implements NodeLogs {
  constructor(
    private readonly local: LogRelay,
    /** Whether this manager holds the node's session. */
    private readonly holdsHere: (nodeId: string) => boolean,
    /** The manager that holds the node's session, if another one does. */
    private readonly holderOf: (nodeId: string) => Promise<ManagerInfo | undefined>,
    private readonly store: ClusterStore,
    /** This manager's identity, as a client of the others. */
    private readonly credentials: ClientCredentials,
  ) {}

  request(nodeId: string, req: LogRequest, onPiece: (piece: LogPiece) => void): () => void {
    if (this.holdsHere(nodeId)) return this.local.request(nodeId, req, onPiece);
    let cancel: (() => void) | undefined;
    let cancelled = false;
    void this.holderOf(nodeId).then(
      (holder) => {
        if (cancelled) return;
        if (!holder?.addr) cancel = this.local.request(nodeId, req, onPiece); // no session anywhere: says so
        else cancel = this.remote(holder, req, onPiece);
      },
      (err: unknown) => this.fail(req, onPiece, `cannot find which manager holds its session: ${err instanceof Error ? err.message : String(err)}`),
    );
    return () => {
      cancelled = true;
      cancel?.();
    };
  }

  private remote(holder: ManagerInfo, req: LogRequest, onPiece: (piece: LogPiece) => void): () => void {
    const serviceId = this.store.task(req.taskIds[0] ?? "")?.serviceId;
    if (!serviceId) return this.fail(req, onPiece, "its tasks are gone");
    const client = clusterClient(holder.addr, this.credentials);
    const open = new Set(req.taskIds);
    const stream: grpc.ClientReadableStream<wire.LogChunk> = client.serviceLogs({
      service: serviceId,
      taskIds: req.taskIds,
      follow: req.follow,
      tail: req.tail,
      since: req.since,
      localOnly: true,
    });
    const finish = (error?: string) => {
      for (const taskId of open) onPiece({ taskId, eof: true, ...(error ? { error } : {}) });
      open.clear();
      client.close();
    };
    stream.on("data", (c: wire.LogChunk) => {
      if (!open.has(c.taskId)) return;
      if (c.error) {
        open.delete(c.taskId);
        onPiece({ taskId: c.taskId, eof: true, error: c.error });
      } else if (c.data?.length) onPiece({ taskId: c.taskId, data: Buffer.from(c.data) });
    });
    stream.on("end", () => finish());
    stream.on("error", (err: grpc.ServiceError) => {
      if (err.code !== 1 /* CANCELLED: ours */) finish(`manager ${holder.hostname}, which holds the node's session, answered: ${err.details || err.message}`);
      else finish();
    });
    return () => stream.cancel();
  }

  private fail(req: LogRequest, onPiece: (piece: LogPiece) => void, why: string): () => void {
    for (const taskId of req.taskIds) onPiece({ taskId, eof: true, error: why });
    return () => {};
  }
}
