// What the template receives: a pure function of the cluster snapshot (nodes,
// services, tasks as the Watch stream gives them). The data, documented for
// template authors (README.md of this app says the same with an example):
//
//   version     the cluster store version rendered
//   nodes[]     { id, hostname, addr, ready }  every node; ready = up and active
//   tcp[]       a TCP frontend per published TCP port that is not HTTP-routed:
//               { name, port, backend }
//   http[]      a shared HTTP frontend per port that HTTP-mode services use:
//               { name, port, routes[]: { backend, host, path, acl } }, routes
//               ordered most specific first (host and path, host, path, none)
//   backends[]  { name, service, mode ("tcp"|"http"), balance, publishMode
//               ("ingress"|"host"), port, servers[] }, servers being slots
//               { name, addr, port, weight, enabled, node }: one per node that serves
//               the port (every ready node for a mesh port, the ready nodes
//               running a task for a host-mode one), by node ID, then spare
//               disabled slots (addr 0.0.0.0) up to a power of two (≥ 4), so
//               that a node coming or going is a runtime change, not a reload
//   udp[]       { service, port, publishMode }: published UDP ports, which
//               HAProxy 2.6 cannot proxy (rendered as comments, and warned about)
//   runtime     { statsSocket, statsPort, tlsCert }: where the runtime API and
//               stats page are, and the certificate (PEM) of the HTTPS side of
//               the shared HTTP frontends ("" for none)
//
// A node's servers have the weight of its label vipmesh.haproxy.weight (1 by
// default): a bigger machine can take a bigger share. Addresses, weights and
// enabled states are what the runtime API changes without a reload.
//
// Service labels choose the rest (annotations.labels):
//   vipmesh.haproxy.mode=http       route the service's first published TCP port by HTTP
//   vipmesh.haproxy.host=NAME       … for requests with this Host
//   vipmesh.haproxy.path=/PREFIX    … whose path starts with this
//   vipmesh.haproxy.port=80         … on this shared frontend port (default 80; with a
//                                   certificate, port 80's frontend serves HTTPS on 443 too)
//   vipmesh.haproxy.balance=ALGO    HAProxy's balance (default from the service's
//                                   LB settings: rr → roundrobin, random → random,
//                                   client-IP affinity → source)
//   vipmesh.haproxy.enable=false    leave the service out

import type { wire } from "@vipmesh/api";

export interface Slot {
  name: string;
  addr: string;
  port: number;
  weight: number;
  enabled: boolean;
  /** The node's hostname, "" for a spare slot. */
  node: string;
}

export interface Backend {
  name: string;
  service: string;
  mode: "tcp" | "http";
  balance: string;
  publishMode: "ingress" | "host";
  port: number;
  servers: Slot[];
}

export interface TcpFrontend {
  name: string;
  port: number;
  backend: string;
}

export interface HttpRoute {
  backend: string;
  host: string;
  path: string;
  /** HAProxy condition selecting the route ("" for the default). */
  acl: string;
}

export interface HttpFrontend {
  name: string;
  port: number;
  routes: HttpRoute[];
}

export interface TemplateData {
  version: number;
  nodes: { id: string; hostname: string; addr: string; ready: boolean }[];
  tcp: TcpFrontend[];
  http: HttpFrontend[];
  backends: Backend[];
  udp: { service: string; port: number; publishMode: string }[];
  runtime: RuntimeSettings;
}

export interface RuntimeSettings {
  /** The runtime API socket (level admin): what runtime updates go to when there is no master socket. */
  statsSocket: string;
  /** The stats page's port (http://HOST:PORT/stats). */
  statsPort: number;
  /** A PEM certificate and key for HTTPS on 443 beside the HTTP frontend on 80; "" for none. */
  tlsCert: string;
}

export interface ClusterSnapshot {
  version: number;
  nodes: wire.Node[];
  services: wire.Service[];
  tasks: wire.Task[];
}

export const LABEL = "vipmesh.haproxy.";
const MIN_SLOTS = 4;

const slotCount = (n: number): number => {
  let s = MIN_SLOTS;
  while (s < n) s *= 2;
  return s;
};

const isReadyNode = (n: wire.Node): boolean => n.status?.state === "ready" && n.spec?.availability === "active";
const byId = <T extends { id: string }>(a: T, b: T) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

function balanceOf(s: wire.Service): string {
  const label = s.spec?.annotations?.labels?.[`${LABEL}balance`];
  if (label) return label;
  const e = s.spec?.endpointSpec;
  if (e?.lbAffinity === "client-ip") return "source";
  return e?.lbScheduler === "random" ? "random" : "roundrobin";
}

/** A node's label vipmesh.haproxy.weight, if it is a weight HAProxy takes (0-256); else 1. */
function weightOf(n: wire.Node): number {
  const w = Number(n.spec?.labels?.[`${LABEL}weight`] ?? 1);
  return Number.isInteger(w) && w >= 0 && w <= 256 ? w : 1;
}

function slots(addrs: { node: wire.Node; port: number }[]): Slot[] {
  const out: Slot[] = addrs.map(({ node, port }, i) => ({
    name: `s${i + 1}`,
    addr: node.status!.addr,
    port,
    weight: weightOf(node),
    enabled: true,
    node: node.description?.hostname ?? node.id,
  }));
  for (let i = out.length; i < slotCount(addrs.length); i++) out.push({ name: `s${i + 1}`, addr: "0.0.0.0", port: 0, weight: 1, enabled: false, node: "" });
  return out;
}

/** The template's data for a snapshot; `runtime` says where the runtime API and stats page are. */
export function templateData(c: ClusterSnapshot, runtime: RuntimeSettings): TemplateData {
  const nodes = [...c.nodes].sort(byId);
  const ready = nodes.filter(isReadyNode);
  const nodeById = new Map(nodes.map((n) => [n.id, n]));
  const tasksByService = new Map<string, wire.Task[]>();
  for (const t of c.tasks) {
    if (t.desiredState !== "running" || t.status?.state !== "running") continue;
    const list = tasksByService.get(t.serviceId);
    if (list) list.push(t);
    else tasksByService.set(t.serviceId, [t]);
  }

  const data: TemplateData = {
    version: c.version,
    nodes: nodes.map((n) => ({ id: n.id, hostname: n.description?.hostname ?? "", addr: n.status?.addr ?? "", ready: isReadyNode(n) })),
    tcp: [],
    http: [],
    backends: [],
    udp: [],
    runtime,
  };
  const http = new Map<number, HttpRoute[]>();
  for (const s of [...c.services].sort((a, b) => (a.spec!.annotations!.name < b.spec!.annotations!.name ? -1 : 1))) {
    const name = s.spec!.annotations!.name;
    const labels = s.spec?.annotations?.labels ?? {};
    if (labels[`${LABEL}enable`] === "false") continue;
    const running = new Set((tasksByService.get(s.id) ?? []).map((t) => t.nodeId));
    const httpMode = labels[`${LABEL}mode`] === "http";
    let httpTaken = false;
    for (const p of s.endpoint?.ports ?? []) {
      const publishMode = p.publishMode === "host" ? "host" : "ingress";
      if (p.protocol === "udp") {
        data.udp.push({ service: name, port: p.publishedPort, publishMode });
        continue;
      }
      if (p.protocol !== "tcp" || !p.publishedPort) continue; // SCTP: neither can HAProxy
      const serving = publishMode === "host" ? ready.filter((n) => running.has(n.id)) : ready;
      const asHttp: boolean = httpMode && !httpTaken;
      httpTaken ||= asHttp;
      const backend: Backend = {
        name: `be_${name}_${p.publishedPort}`,
        service: name,
        mode: asHttp ? "http" : "tcp",
        balance: balanceOf(s),
        publishMode,
        port: p.publishedPort,
        servers: slots(serving.map((node) => ({ node, port: p.publishedPort }))),
      };
      data.backends.push(backend);
      if (!asHttp) {
        data.tcp.push({ name: `ft_tcp_${p.publishedPort}`, port: p.publishedPort, backend: backend.name });
        continue;
      }
      const port = Number(labels[`${LABEL}port`] ?? 80);
      const route = { backend: backend.name, host: labels[`${LABEL}host`] ?? "", path: labels[`${LABEL}path`] ?? "", acl: "" };
      route.acl = [route.host && `{ hdr(host) -i ${route.host} }`, route.path && `{ path_beg ${route.path} }`].filter(Boolean).join(" ");
      const routes = http.get(port) ?? [];
      routes.push(route);
      http.set(port, routes);
    }
  }
  const specificity = (r: HttpRoute) => (r.host ? 2 : 0) + (r.path ? 1 : 0);
  for (const [port, routes] of [...http].sort(([a], [b]) => a - b)) {
    routes.sort((a, b) => specificity(b) - specificity(a) || b.path.length - a.path.length);
    data.http.push({ name: `ft_http_${port}`, port, routes });
  }
  data.tcp.sort((a, b) => a.port - b.port);
  return data;
}
