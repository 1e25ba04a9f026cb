// The log relay: log requests ride the agents' sessions, and a task's output
// comes up from its agent, piece by piece, to whoever asked — until every task's part ended or the session did.

import type { LogPiece, LogRequest } from "@vipmesh/api";
import type { SessionChannel } from "./dispatcher.ts";

interface PendingRequest {
  /** Tasks that have not reached eof yet. */
  open: Set<string>;
  onPiece: (piece: LogPiece) => void;
}

export class LogRelay {
  private nextRequestId = 1;
  /** Requests in flight, per session, by request ID. */
  private readonly inFlight = new Map<SessionChannel, Map<number, PendingRequest>>();

  constructor(
    /** The channel of the node's current session, if it has one. */
    private readonly sessionOf: (nodeId: string) => SessionChannel | undefined,
    private readonly hostname: (nodeId: string) => string,
  ) {}

  /**
   * Asks the node's agent for the logs of some of its tasks; `onPiece` gets
   * each piece, and every task's part ends with `eof` — with an error when
   * the node has no session (at once) or loses it. Returns a cancel function.
   */
  request(nodeId: string, req: LogRequest, onPiece: (piece: LogPiece) => void): () => void {
    const channel = this.sessionOf(nodeId);
    if (!channel) {
      const why = `node ${this.hostname(nodeId)} is not connected to the manager`;
      for (const taskId of req.taskIds) onPiece({ taskId, eof: true, error: why });
      return () => {};
    }
    const requestId = this.nextRequestId++;
    let requests = this.inFlight.get(channel);
    if (!requests) this.inFlight.set(channel, (requests = new Map()));
    requests.set(requestId, { open: new Set(req.taskIds), onPiece });
    channel.send({ logRequest: { requestId, request: req } });
    return () => {
      if (requests.delete(requestId) && this.sessionOf(nodeId) === channel) channel.send({ logCancel: { requestId } });
    };
  }

  /** A piece of a log from a node's agent; pieces of cancelled requests and of tasks not asked for are dropped. */
  piece(nodeId: string, requestId: number, piece: LogPiece): void {
    const channel = this.sessionOf(nodeId);
    const requests = channel && this.inFlight.get(channel);
    const pending = requests?.get(requestId);
    if (!requests || !pending?.open.has(piece.taskId)) return;
    if (piece.eof) {
      pending.open.delete(piece.taskId);
      if (pending.open.size === 0) requests.delete(requestId);
    }
    pending.onPiece(piece);
  }

  /** Ends every request of a session that is going away, saying why. */
  endSession(channel: SessionChannel, error: string): void {
    const requests = this.inFlight.get(channel);
    if (!requests) return;
    this.inFlight.delete(channel);
    const pending = [...requests.values()];
    requests.clear();
    for (const p of pending) for (const taskId of p.open) p.onPiece({ taskId, eof: true, error });
  }
}
