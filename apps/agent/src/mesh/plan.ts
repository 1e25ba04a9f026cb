// What the routing mesh needs on this node, from its network view: its
// ingress sandbox (an address on the ingress network), the ports published
// through the mesh and where each goes (the service's VIP on the ingress
// network, at the target port), and, per task of a published service, which
// ports its ingress interface accepts.

import { addrOf, ingressSandboxKey, isIngressSandboxEndpoint, isTaskReady, type NetworkView, type Protocol, type ProxyProtocol, type Task } from "@vipmesh/core";

/** A port opened on the node's own addresses, and where its traffic goes. */
export interface PublishedPort {
  protocol: Protocol;
  port: number;
  /** Routing mesh: the service's VIP on the ingress network; host mode: the task's gateway address (no prefix). */
  to: string;
  targetPort: number;
  service: string;
  /** Mesh ports only: served by the agent's PROXY protocol forwarder (mesh/proxy-protocol.ts), not the kernel. */
  proxyProtocol?: ProxyProtocol;
}

export interface IngressPlan {
  networkId: string;
  vni: number;
  /** The ingress network, e.g. 10.255.0.0/16: routed from the node to its ingress sandbox. */
  subnet: string;
  /** The ingress sandbox's address on it (CIDR). */
  addr: string;
  /** Sorted by protocol, then port. */
  published: PublishedPort[];
}

/** The node's part of the mesh; undefined while it has no ingress sandbox (no ingress network, no address yet). */
export function ingressPlanFor(view: NetworkView, nodeId: string): IngressPlan | undefined {
  const own = view.endpoints.get(ingressSandboxKey(nodeId));
  const net = own && view.networks.get(own.networkId);
  // the ingress network is never encrypted (the manager makes it so)
  if (!own || !net || net.encrypted) return undefined;
  const published: PublishedPort[] = [];
  for (const s of view.services.values()) {
    const vip = s.virtualIps.find((v) => v.networkId === net.id);
    if (!vip) continue;
    for (const p of s.ports) {
      if (p.publishMode !== "ingress" || p.publishedPort === 0) continue;
      published.push({
        protocol: p.protocol,
        port: p.publishedPort,
        to: addrOf(vip.addr),
        targetPort: p.targetPort,
        service: s.name,
        ...(p.proxyProtocol ? { proxyProtocol: p.proxyProtocol } : {}),
      });
    }
  }
  return { networkId: net.id, vni: net.vni, subnet: net.subnet, addr: own.addr, published: published.sort(byPort) };
}

const byPort = (a: PublishedPort, b: PublishedPort): number => (a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : a.port - b.port);

/**
 * Host-mode ports of this node's tasks that may take traffic (running and
 * ready), each to its task's gateway address (`gatewayOf`). Two tasks that
 * publish the same port on one node cannot both have it: the first by task ID does.
 */
export function hostPublishedFor(tasks: Iterable<Task>, gatewayOf: (t: Task) => string | undefined): PublishedPort[] {
  const out = new Map<string, PublishedPort>();
  for (const t of [...tasks].sort((a, b) => (a.id < b.id ? -1 : 1))) {
    if (!t.hostPorts?.length || !isTaskReady(t)) continue;
    const to = gatewayOf(t);
    if (!to) continue;
    for (const p of t.hostPorts) {
      const key = `${p.protocol}/${p.publishedPort}`;
      if (!out.has(key)) out.set(key, { protocol: p.protocol, port: p.publishedPort, to: addrOf(to), targetPort: p.targetPort, service: t.serviceName });
    }
  }
  return [...out.values()].sort(byPort);
}

export interface TaskIngressFilter {
  /** The task's interface on the ingress network. */
  ifname: string;
  /** What published traffic may reach the task: its service's target ports… */
  accept: { protocol: Protocol; port: number }[];
  /** …from the ingress sandboxes (addresses, sorted): the view of a node running a published task holds every one. */
  from: string[];
}

/** For a task on the ingress network: the interface and target ports its published traffic may use. */
export function taskIngressFilter(view: NetworkView, t: Task): TaskIngressFilter | undefined {
  const index = t.networks.findIndex((a) => view.networks.get(a.networkId)?.ingress);
  if (index < 0) return undefined;
  const ports = view.services.get(t.serviceId)?.ports ?? [];
  const seen = new Set<string>();
  const accept: TaskIngressFilter["accept"] = [];
  for (const p of ports) {
    const key = `${p.protocol}/${p.targetPort}`;
    if (p.publishMode !== "ingress" || seen.has(key)) continue;
    seen.add(key);
    accept.push({ protocol: p.protocol, port: p.targetPort });
  }
  const from = [...view.endpoints.values()].filter(isIngressSandboxEndpoint).map((e) => addrOf(e.addr)).sort();
  return { ifname: `eth${index}`, accept, from };
}
