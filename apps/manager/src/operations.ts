// The cluster's operations, once, for both APIs: gRPC's handlers (server.ts)
// and the Docker Engine API's routes call this object. Writes run in turn
// through one write queue; creates with a request ID share one request log,
// so a repeat is answered with the first result whichever API it came by.

import type { ClusterOps, LogRequest, LogSink, ManagerNode } from "@vipmesh/engine-api";
import { type Network, type Node, type NodeSpec, type ObjectKind, precondition, type Service, type Task } from "@vipmesh/core";
import type { Cluster } from "./cluster.ts";
import type { Dispatcher } from "./dispatcher.ts";
import type { ManagerDirectory, ManagerInfo } from "./ha/directory.ts";
import type { NodeLogs } from "./ha/peer-logs.ts";
import { RequestLog } from "./request-log.ts";
import type { CertificateAuthority } from "./security/certificate-authority.ts";
import { askRemoval, listImages, type NodeImages, removeImage, startImageLoad } from "./image-relay.ts";
import { relayServiceLogs } from "./service-logs.ts";
import type { ClusterStore } from "./store/cluster-store.ts";
import { WriteQueue } from "./write-queue.ts";

const noCa = () => precondition("this manager runs with --insecure: it has no CA, certificates or join tokens");

const byName = <T>(name: (o: T) => string) => (a: T, b: T) => name(a).localeCompare(name(b));

export class Operations implements ClusterOps {
  private readonly writes = new WriteQueue();
  private readonly requests = new RequestLog();
  private readonly clusterId: string;

  constructor(
    private readonly store: ClusterStore,
    private readonly cluster: Cluster,
    private readonly dispatcher: Dispatcher,
    private readonly ca: CertificateAuthority | undefined,
    /** The cluster's managers, this one among them. */
    private readonly directory: ManagerDirectory,
    /** An --insecure cluster's ID (made on its first start); with a CA, the CA's. */
    insecureClusterId: string,
    /** With several managers: nodes' logs and images through whichever manager holds their session. */
    private readonly peers?: { logs: NodeLogs; images: NodeImages },
  ) {
    this.clusterId = ca?.ca.clusterId ?? insecureClusterId;
  }

  /** A write: run in turn by the queue; a request ID seen before gets the first answer again. */
  private write<T extends object>(method: string, requestId: string | undefined, fn: () => Promise<T>): Promise<T> {
    return this.writes.run(() => (requestId ? this.requests.answer(`${method}/${requestId}`, fn) : fn()));
  }

  private find<K extends ObjectKind>(kind: K, ref: string) {
    return this.store.mustFind(kind, ref);
  }

  listNetworks(): Network[] {
    return this.store.list("network").sort(byName((n) => n.spec.name));
  }
  inspectNetwork(ref: string): Network {
    return this.find("network", ref);
  }
  createNetwork(spec: unknown, requestId?: string): Promise<Network> {
    return this.write("CreateNetwork", requestId, () => this.cluster.createNetwork(spec));
  }
  async removeNetwork(ref: string): Promise<void> {
    await this.cluster.networkDrained(ref); // tasks of a service that left it may still be stopping: not a reason to fail
    await this.write("RemoveNetwork", undefined, async () => (await this.cluster.removeNetwork(ref), {}));
  }

  listServices(): Service[] {
    return this.store.list("service").sort(byName((s) => s.spec.annotations.name));
  }
  inspectService(ref: string): Service {
    return this.find("service", ref);
  }
  createService(spec: unknown, requestId?: string): Promise<Service> {
    return this.write("CreateService", requestId, () => this.cluster.createService(spec));
  }
  updateService(ref: string, version: number, spec: unknown): Promise<Service> {
    return this.write("UpdateService", undefined, () => this.cluster.updateService(ref, version, spec));
  }
  rollbackService(ref: string, version?: number): Promise<Service> {
    return this.write("RollbackService", undefined, () => this.cluster.rollbackService(ref, version));
  }
  async removeService(ref: string): Promise<void> {
    await this.write("RemoveService", undefined, async () => (await this.cluster.removeService(ref), {}));
  }

  listNodes(): Node[] {
    return this.store.list("node").sort(byName((n) => n.description.hostname));
  }
  inspectNode(ref: string): Node {
    return this.find("node", ref);
  }
  updateNode(ref: string, version: number, spec: Partial<NodeSpec>): Promise<Node> {
    return this.write("UpdateNode", undefined, () => this.cluster.updateNode(ref, version, spec));
  }
  /** A worker node, or else a manager named by its ID or hostname (the directory's: refused while it runs, unless forced). */
  async removeNode(ref: string, force: boolean): Promise<void> {
    const manager = this.directory.list().find((m) => m.id === ref || m.hostname === ref);
    if (manager && !this.store.list("node").some((n) => n.id === ref || n.description.hostname === ref)) return this.directory.remove(manager.id, force);
    await this.write("RemoveNode", undefined, async () => (await this.cluster.removeNode(ref, force), {}));
  }

  listTasks(filter: { service?: string; node?: string } = {}): Task[] {
    const service = filter.service ? this.find("service", filter.service).id : undefined;
    const node = filter.node ? this.find("node", filter.node).id : undefined;
    return this.store
      .list("task")
      .filter((t) => (!service || t.serviceId === service) && (!node || t.nodeId === node))
      .sort((a, b) => a.serviceName.localeCompare(b.serviceName) || a.slot - b.slot || b.createdAt.localeCompare(a.createdAt));
  }
  inspectTask(id: string): Task {
    return this.find("task", id);
  }

  /** `role` as any caller gives it: the CA refuses one that is not "worker" or "manager". */
  async joinToken(role: string, rotate = false): Promise<string> {
    if (!this.ca) throw noCa();
    return this.ca.joinToken(role, rotate);
  }

  /** With several managers, `peers` reach nodes whose sessions others hold (ha/peer-logs.ts); localOnly asks only this one's. */
  serviceLogs(req: LogRequest, sink: LogSink): () => void {
    return relayServiceLogs(this.store, (!req.localOnly && this.peers?.logs) || this.dispatcher.logs, req, sink);
  }

  /** Nodes' images through whichever manager holds their session (ha/peer-images.ts); localOnly: only this one's sessions. */
  private images(localOnly: boolean): NodeImages {
    return (!localOnly && this.peers?.images) || this.dispatcher.images;
  }
  /** Starts an image load to the nodes named (default: every ready node with containers); see image-relay.ts. */
  loadImage(nodes: readonly string[], localOnly = false) {
    return startImageLoad(this.store, this.images(localOnly), nodes);
  }
  /** Each target node's images as its agent lists them. */
  listImages(nodes: readonly string[] = [], localOnly = false) {
    return listImages(this.store, this.images(localOnly), nodes);
  }
  /**
   * Refused while a task on a target node uses it, unless forced; NOT_FOUND when no target has it.
   * localOnly: one round on this manager's sessions for the manager running both (`check`: ask only).
   */
  removeImage(image: string, nodes: readonly string[], force: boolean, one?: { localOnly: boolean; check: boolean }) {
    if (one?.localOnly) return askRemoval(this.store, this.dispatcher.images, image, nodes, force, one.check);
    return removeImage(this.store, this.images(false), image, nodes, force);
  }

  version(): number {
    return this.store.version;
  }
  onChange(listener: () => void): () => void {
    return this.store.subscribe(() => listener());
  }

  /** This manager, as a node of its cluster. */
  manager(): ManagerNode {
    return this.asNode(this.directory.self());
  }

  /** Every manager of the cluster, whether reachable, which leads. */
  managers(): ManagerNode[] {
    return this.directory.list().map((m) => this.asNode(m));
  }

  private asNode(m: ManagerInfo): ManagerNode {
    const first = this.directory.list().reduce((a, b) => (b.createdAt < a.createdAt ? b : a), m);
    return { id: m.id, hostname: m.hostname, addr: m.addr, createdAt: m.createdAt, clusterId: this.clusterId, clusterCreatedAt: first.createdAt, reachable: m.reachable, leader: m.leader };
  }
}
