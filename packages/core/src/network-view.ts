// The per-node network view: what one node's agent needs to know of the
// cluster — its own tasks, the networks they attach to, every service on
// those networks with its VIPs, every endpoint (task address + node) on them,
// and the peer nodes that host those endpoints. The manager keeps one view per
// agent session and sends what changed; the agent applies the same deltas.
// How a view is computed from cluster state: network-view-derivation.ts.

import type { PortConfig, Task, VirtualIp } from "./types.ts";

export interface ViewNetwork {
  id: string;
  name: string;
  subnet: string;
  gateway: string;
  vni: number;
  encrypted: boolean;
  ingress: boolean;
}

export interface ViewService {
  id: string;
  name: string;
  endpointMode: string;
  ports: PortConfig[];
  virtualIps: VirtualIp[];
  lbScheduler: string;
  /** "client-ip" with its timeout (s); absent (or "none", "" off the wire) for none. */
  lbAffinity?: string;
  lbAffinityTimeoutS?: number;
  /** Per network, the names it answers to there besides its own (the attachment's aliases); absent: none. */
  aliases?: { networkId: string; names: string[] }[];
}

export interface ViewEndpoint {
  key: string;
  taskId: string;
  serviceId: string;
  networkId: string;
  addr: string;
  mac: string;
  nodeId: string;
  nodeAddr: string;
  /** Running and not unhealthy: may receive traffic. */
  ready: boolean;
  /** Its share of new connections to the service's VIP (the slot's weight, default 1). */
  weight: number;
}

export interface ViewPeer {
  nodeId: string;
  addr: string;
}

export interface NetworkView {
  tasks: Map<string, Task>;
  networks: Map<string, ViewNetwork>;
  services: Map<string, ViewService>;
  endpoints: Map<string, ViewEndpoint>;
  peers: Map<string, ViewPeer>;
}

/** A change to a view: what an Assignment carries, beside its version and whether it is full. */
export interface ViewDelta {
  tasks: Task[];
  removedTasks: string[];
  networks: ViewNetwork[];
  removedNetworks: string[];
  services: ViewService[];
  removedServices: string[];
  endpoints: ViewEndpoint[];
  removedEndpoints: string[];
  peers: ViewPeer[];
  removedPeers: string[];
}

export const emptyView = (): NetworkView => ({
  tasks: new Map(),
  networks: new Map(),
  services: new Map(),
  endpoints: new Map(),
  peers: new Map(),
});

export const emptyDelta = (): ViewDelta => ({
  tasks: [],
  removedTasks: [],
  networks: [],
  removedNetworks: [],
  services: [],
  removedServices: [],
  endpoints: [],
  removedEndpoints: [],
  peers: [],
  removedPeers: [],
});

export function isEmptyDelta(d: ViewDelta): boolean {
  for (const k in d) if (d[k as keyof ViewDelta].length > 0) return false;
  return true;
}

/**
 * Why an agent must not attach a task to this network, if it must not: an
 * encrypted overlay while the node cannot encrypt (`cannotEncrypt` says why:
 * no keys yet, no ESP in its kernel, the guard against plaintext not in
 * place). The task fails with this reason rather than send plaintext on a
 * network its user asked to be encrypted (swarm's CVE-2023-28840 class of bug).
 */
export function attachmentRefusal(n: ViewNetwork, cannotEncrypt: string | undefined): string | undefined {
  if (n.encrypted && cannotEncrypt !== undefined) {
    return `network ${n.name} is encrypted and ${cannotEncrypt}; refusing to attach rather than send plaintext`;
  }
  return undefined;
}

/** The key of a node's ingress sandbox among the endpoints of the ingress network. */
export const ingressSandboxKey = (nodeId: string): string => `ingress-sandbox/${nodeId}`;

/** An endpoint that is a node's ingress sandbox, not a task. */
export const isIngressSandboxEndpoint = (e: ViewEndpoint): boolean => e.key === ingressSandboxKey(e.nodeId);

/** Whether two entries of a view are the same (compared as the wire carries them). */
export const sameViewEntry = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/** What turns `prev` into `next`. */
export function diffNetworkViews(prev: NetworkView, next: NetworkView): ViewDelta {
  const d = emptyDelta();
  diffMap(prev.tasks, next.tasks, d.tasks, d.removedTasks);
  diffMap(prev.networks, next.networks, d.networks, d.removedNetworks);
  diffMap(prev.services, next.services, d.services, d.removedServices);
  diffMap(prev.endpoints, next.endpoints, d.endpoints, d.removedEndpoints);
  diffMap(prev.peers, next.peers, d.peers, d.removedPeers);
  return d;
}

function diffMap<T>(prev: Map<string, T>, next: Map<string, T>, upserts: T[], removed: string[]): void {
  for (const [k, v] of next) if (!prev.has(k) || !sameViewEntry(prev.get(k), v)) upserts.push(v);
  for (const k of prev.keys()) if (!next.has(k)) removed.push(k);
}

/** Applies a delta in place (what an agent does with each Assignment). */
export function applyViewDelta(view: NetworkView, d: ViewDelta): void {
  for (const k of d.removedTasks) view.tasks.delete(k);
  for (const t of d.tasks) view.tasks.set(t.id, t);
  for (const k of d.removedNetworks) view.networks.delete(k);
  for (const n of d.networks) view.networks.set(n.id, n);
  for (const k of d.removedServices) view.services.delete(k);
  for (const s of d.services) view.services.set(s.id, s);
  for (const k of d.removedEndpoints) view.endpoints.delete(k);
  for (const e of d.endpoints) view.endpoints.set(e.key, e);
  for (const k of d.removedPeers) view.peers.delete(k);
  for (const p of d.peers) view.peers.set(p.nodeId, p);
}
