// A session with no manager behind it, for unit tests of the agent: the test
// assigns view deltas; reports and acknowledgements are recorded.

import { applyViewDelta, emptyDelta, emptyView, type NetworkView, type OverlayKeySet, type ViewDelta } from "@vipmesh/core";
import { EventEmitter, once } from "node:events";
import { type AgentSession, clearView, type ImageServer, type LogServer, type SessionEvents, type TaskStatusReport } from "./session.ts";

export class FakeSession extends EventEmitter<SessionEvents> implements AgentSession {
  readonly view: NetworkView = emptyView();
  version = 0;
  encryption: OverlayKeySet | undefined;
  /** Every report, in order. */
  readonly reports: { taskId: string; status: TaskStatusReport }[] = [];
  acked = 0;
  logServer: LogServer | undefined;
  imageServer: ImageServer | undefined;
  private readonly acks = new EventEmitter();

  constructor(readonly nodeId: string) {
    super();
  }

  start(): void {
    this.emit("open");
  }

  stop(): void {}

  /** Applies an assignment as ManagerSession does, and resolves once the agent acknowledged it. */
  async assign(delta: Partial<ViewDelta>, full = false): Promise<void> {
    const d = { ...emptyDelta(), ...delta };
    if (full) clearView(this.view);
    applyViewDelta(this.view, d);
    const version = ++this.version;
    const acked = this.waitForAck(version);
    this.emit("view", d, full);
    await acked;
  }

  /** The manager removed the node, as ManagerSession tells it: the view empties. */
  remove(why: string): void {
    clearView(this.view);
    this.encryption = undefined;
    this.emit("removed", why);
  }

  /** Resolves once `version` (or a later one) is acknowledged. */
  async waitForAck(version: number): Promise<void> {
    while (this.acked < version) await once(this.acks, "ack");
  }

  ack(version: number): void {
    this.acked = Math.max(this.acked, version);
    this.acks.emit("ack");
  }

  report(taskId: string, status: TaskStatusReport): void {
    this.reports.push({ taskId, status });
  }

  /** The last state reported for each task, "state/health", sorted by task. */
  lastReports(): string {
    const last = new Map(this.reports.map((r) => [r.taskId, `${r.status.state}/${r.status.health ?? ""}${r.status.err ? ` ${r.status.err}` : ""}`]));
    return [...last.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([id, s]) => `report ${id} ${s}\n`)
      .join("");
  }

  serveLogs(server: LogServer): void {
    this.logServer = server;
  }

  serveImages(server: ImageServer): void {
    this.imageServer = server;
  }
}
