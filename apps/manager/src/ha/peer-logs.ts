// Task logs with several managers: an agent answers log requests over its
// session, which any manager may hold. A node whose session is here is asked
// directly (the dispatcher's LogRelay); one held by another manager is asked
// through that manager's ServiceLogs, restricted to the node's tasks and to its
// own sessions (local_only), with this manager's certificate.

import type * as grpc from "@grpc/grpc-js";
import type { LogPiece, LogRequest, wire } from "@vipmesh/api";
import type { LogRelay } from "../log-relay.ts";
import type { ClusterStore } from "../store/cluster-store.ts";
import type { ManagerInfo } from "./directory.ts";
import type { SessionHolders } from "./session-holders.ts";

/** What relayServiceLogs needs: a node's part of a log request. */
export type NodeLogs = Pick<LogRelay, "request">;

export class PeerLogRelay implements NodeLogs {
  constructor(
    private readonly local: LogRelay,
    private readonly holders: SessionHolders,
    private readonly store: ClusterStore,
  ) {}

  request(nodeId: string, req: LogRequest, onPiece: (piece: LogPiece) => void): () => void {
    if (this.holders.holdsHere(nodeId)) return this.local.request(nodeId, req, onPiece);
    let cancel: (() => void) | undefined;
    let cancelled = false;
    void this.holders.elsewhere(nodeId).then(
      (holder) => {
        if (cancelled) return;
        if (!holder) cancel = this.local.request(nodeId, req, onPiece); // no session anywhere: says so
        else cancel = this.remote(holder, req, onPiece);
      },
      (err: Error) => this.fail(req, onPiece, err.message),
    );
    return () => {
      cancelled = true;
      cancel?.();
    };
  }

  private remote(holder: ManagerInfo, req: LogRequest, onPiece: (piece: LogPiece) => void): () => void {
    const serviceId = this.store.task(req.taskIds[0] ?? "")?.serviceId;
    if (!serviceId) return this.fail(req, onPiece, "its tasks are gone");
    const client = this.holders.client(holder);
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
      if (err.code !== 1 /* CANCELLED: ours */) finish(this.holders.failed(holder, err));
      else finish();
    });
    return () => stream.cancel();
  }

  private fail(req: LogRequest, onPiece: (piece: LogPiece) => void, why: string): () => void {
    for (const taskId of req.taskIds) onPiece({ taskId, eof: true, error: why });
    return () => {};
  }
}
