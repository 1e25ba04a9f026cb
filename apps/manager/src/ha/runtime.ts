// A manager among several (the etcd store): its lease, the election, the
// manager directory, node liveness, the drains' and the overlay keys' acknowledgements,
// over one etcd client of its own (the lease's renewals never queue behind
// the store's large transactions). startManager builds it; the leader-only
// loops follow leadership through whileLeading.

import type { OverlayKeySet } from "@vipmesh/core";
import { connectEtcd, type EtcdClientTls } from "@vipmesh/etcd";
import type { Cluster } from "../cluster.ts";
import { type LivenessFactory, MISSED_HEARTBEATS_FOR_DOWN, restartGraceMs } from "../node-health.ts";
import type { ClusterStore } from "../store/cluster-store.ts";
import type { ManagerInfo } from "./directory.ts";
import { DrainAcks } from "./drain-acks.ts";
import { EtcdDirectory } from "./etcd-directory.ts";
import { KeyAcks } from "./key-acks.ts";
import { type LeaderLoop, Leadership, whileLeading } from "./leadership.ts";
import { ManagerLease } from "./manager-lease.ts";
import { LivenessJudge, NODES_PREFIX, SessionKeys, SessionLiveness } from "./node-liveness.ts";

export interface HaOptions {
  /** This manager's ID (manager-identity.ts). */
  id: string;
  endpoints: readonly string[];
  tls: EtcdClientTls | undefined;
  store: ClusterStore;
  cluster: Cluster;
  heartbeatPeriodMs: number;
  /** This manager as it runs now (its addresses are known once it listens). */
  self: () => Omit<ManagerInfo, "reachable" | "leader">;
  log: (line: string) => void;
}

export class HaRuntime {
  private readonly client;
  private readonly lease;
  readonly leadership: Leadership;
  readonly directory: EtcdDirectory;
  /** The leader's judge of node liveness: a loop for whileLeading. */
  readonly judge: LivenessJudge;
  /** The dispatcher's drained hook: tasks are marked drained once every manager's sessions drained them. */
  readonly drains: DrainAcks;
  private keyAcks: KeyAcks | undefined;
  private stopFollowing: (() => void) | undefined;
  private readonly id: string;

  constructor(private readonly o: HaOptions) {
    this.id = o.id;
    this.client = connectEtcd({ endpoints: o.endpoints, tls: o.tls });
    this.lease = new ManagerLease(this.client);
    this.leadership = new Leadership(this.client, this.lease, this.id, o.log);
    this.directory = new EtcdDirectory(this.client, this.lease, this.leadership, o.self);
    this.judge = new LivenessJudge(this.client, {
      windowMs: MISSED_HEARTBEATS_FOR_DOWN * o.heartbeatPeriodMs,
      graceMs: restartGraceMs(o.heartbeatPeriodMs),
      nodes: () => o.store.list("node").map((n) => ({ id: n.id, down: n.status.state === "down" })),
      markDown: (nodeId, why) => o.cluster.setNodeState(nodeId, "down", why),
      log: o.log,
    });
    this.drains = new DrainAcks(this.client, this.lease, this.id, o.store, o.cluster, this.directory);
  }

  /** The dispatcher's liveness: sessions held here put their nodes' keys on this manager's lease. */
  liveness(): LivenessFactory {
    return (endSession) =>
      new SessionLiveness(new SessionKeys(this.client, this.lease, this.id), this.o.store, this.o.cluster, this.o.heartbeatPeriodMs, endSession);
  }

  /** Starts the lease and the election (they need no addresses yet); rejects if etcd cannot be read. */
  async start(): Promise<void> {
    await this.leadership.start();
    this.lease.start();
  }

  /**
   * Once the manager listens: its directory entry, the drains' and the keys'
   * acknowledgements (keys: when it has overlay keys), and the leader-only
   * loops following leadership (the drains' leader part among them).
   */
  async serve(
    loops: readonly LeaderLoop[],
    keys?: { current: () => OverlayKeySet; publish: (keys: OverlayKeySet) => Promise<void> },
  ): Promise<void> {
    await this.directory.start();
    await this.drains.start();
    if (keys) {
      this.keyAcks = new KeyAcks(this.client, this.lease, this.id, this.o.store, this.directory, keys.current, keys.publish);
      await this.keyAcks.start();
    }
    this.stopFollowing = whileLeading(this.leadership, [...loops, this.drains.leader]);
  }

  /** The manager that holds the node's session now, if another reachable one does (its liveness key). */
  async holderOf(nodeId: string): Promise<ManagerInfo | undefined> {
    const keys = await this.client.getAll().prefix(`${NODES_PREFIX}${nodeId}/`).keys();
    const holders = new Set(keys.map((k) => k.slice(k.lastIndexOf("/") + 1)));
    return this.directory.list().find((m) => m.id !== this.id && m.reachable && holders.has(m.id));
  }

  /** The leader's KeyPublisher: resolves once every reachable manager's sessions hold `keys`. */
  everyManagerHolds(keys: OverlayKeySet): Promise<void> {
    return this.keyAcks!.everyManagerHolds(keys);
  }

  /** Stops the loops and revokes the lease: its keys go at once, another manager takes over without waiting. */
  async stop(): Promise<void> {
    this.stopFollowing?.();
    this.leadership.stop();
    this.keyAcks?.stop();
    this.drains.stop();
    this.directory.stop();
    await this.lease.stop();
    this.client.close();
  }
}
