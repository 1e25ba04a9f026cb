// What the Engine API may do to the cluster: the same operations the gRPC
// handlers call (apps/manager/src/operations.ts implements them over the
// store, the write queue and the request log), so every rule lives in one
// place and HTTP handlers only translate Docker's JSON. Domain types only.

import type { Network, Node, NodeSpec, Service, Task } from "@vipmesh/core";

/** A manager as a node of its own cluster (Docker lists managers with their reachability, the leader marked). */
export interface ManagerNode {
  /** Stable across restarts: kept in the store's settings. */
  id: string;
  hostname: string;
  /** Where agents reach it, "host:port" ("" when it listens only on a socket). */
  addr: string;
  createdAt: string;
  /** The cluster's ID (the CA's), Docker's Swarm.Cluster.ID. */
  clusterId: string;
  clusterCreatedAt: string;
  /** It runs and holds its lease (this manager, always). */
  reachable: boolean;
  /** It runs the orchestrator and the scheduler. */
  leader: boolean;
}

/** A piece of one task's output, or (`error`) why its log cannot be had. */
export interface LogChunk {
  taskId: string;
  slot: number;
  nodeId: string;
  data?: Buffer;
  error?: string;
}

export interface LogSink {
  write(chunk: LogChunk): void;
  /** Every task's log ended (or cannot be had). */
  end(): void;
}

export interface LogRequest {
  /** ID, ID prefix or name. */
  service: string;
  follow: boolean;
  /** Per task: only the last `tail` lines; 0 = all. */
  tail: number;
  /** Only lines logged at or after this time (@vipmesh/api's `sinceTime` form); absent or "": all. The agents filter. */
  since?: string;
  /** Only these of the service's tasks (`/tasks/{id}/logs`); absent: all. */
  taskIds?: string[];
  /** Only nodes whose session this manager holds (a manager asking for another); absent: every node, through the managers that hold them. */
  localOnly?: boolean;
}

/** An image in a node's containerd. */
export interface NodeImage {
  /** Normalized: docker.io/library/web:1. */
  name: string;
  /** The manifest's digest, its media type and platform. */
  digest: string;
  mediaType: string;
  os: string;
  architecture: string;
  /** Bytes of its content. */
  size: number;
  createdAt: string;
  /** Names of the node's tasks that use it. */
  tasks: string[];
}

/** A node's images, or (`error`, non-empty) why it could not say. */
export interface NodeImageList {
  nodeId: string;
  hostname: string;
  images: NodeImage[];
  error?: string;
}

/**
 * Reads answer at once; writes go through the manager's write queue (one at a
 * time, in turn with gRPC's) and resolve with the committed object. Refusals
 * throw (or reject with) a VipmeshError. `ref`: an ID, a name or a unique ID prefix.
 * `requestId` on creates: a repeat is answered with the first result (shared with gRPC's log).
 */
export interface ClusterOps {
  listNetworks(): Network[];
  inspectNetwork(ref: string): Network;
  createNetwork(spec: unknown, requestId?: string): Promise<Network>;
  removeNetwork(ref: string): Promise<void>;

  listServices(): Service[];
  inspectService(ref: string): Service;
  createService(spec: unknown, requestId?: string): Promise<Service>;
  /** `version`: the one the caller read; a stale one is ABORTED. */
  updateService(ref: string, version: number, spec: unknown): Promise<Service>;
  /** `version`: the one the caller read; a stale one is refused (aborted). */
  rollbackService(ref: string, version?: number): Promise<Service>;
  removeService(ref: string): Promise<void>;

  /** The agents' nodes (not the managers: see managers()). */
  listNodes(): Node[];
  inspectNode(ref: string): Node;
  updateNode(ref: string, version: number, spec: Partial<NodeSpec>): Promise<Node>;
  removeNode(ref: string, force: boolean): Promise<void>;

  /** `service`/`node`: refs, resolved (NOT_FOUND when unknown). */
  listTasks(filter?: { service?: string; node?: string }): Task[];
  inspectTask(id: string): Task;

  /** The current join token for the role; FAILED_PRECONDITION on an --insecure manager. */
  joinToken(role: "worker" | "manager", rotate?: boolean): Promise<string>;
  /** Relays the service's logs into `sink`; returns cancel. NOT_FOUND for an unknown service. */
  serviceLogs(req: LogRequest, sink: LogSink): () => void;

  /** The images of the nodes named (IDs or hostnames), or of every ready node with the container runtime; asked of their agents. */
  listImages(nodes?: readonly string[]): Promise<NodeImageList[]>;

  /** The store's version: bumped by every commit. */
  version(): number;
  /** Calls `listener` after every commit; returns unsubscribe. */
  onChange(listener: () => void): () => void;

  /** This manager, the one answering. */
  manager(): ManagerNode;
  /** Every manager of the cluster, this one included. */
  managers(): ManagerNode[];
}
