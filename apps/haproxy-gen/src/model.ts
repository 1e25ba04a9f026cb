// What the template receives: a pure function of the cluster snapshot (nodes,
// services, tasks as the Watch stream gives them) and of the data rendered
// before (it keeps every node on its server slot). Its fields and the service
// labels that shape it are documented for template authors
// (docs/ARCHITECTURE.md, "haproxy-gen template data").

import type { wire } from "@vipmesh/api";
import { isTaskReady } from "@vipmesh/core";

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
  /** What was left out, and why (haproxy-gen logs each once). */
  warnings: string[];
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
/** Balance algorithms a label may name (those that take no argument). */
export const BALANCE_ALGORITHMS = ["roundrobin", "static-rr", "leastconn", "first", "source", "random", "uri"] as const;
const HOST = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::\d{1,5})?$/;
const PATH = /^\/[A-Za-z0-9._~!$&()*+,;=:@%/-]*$/;

const slotCount = (n: number): number => {
  let s = MIN_SLOTS;
  while (s < n) s *= 2;
  return s;
};

const isReadyNode = (n: wire.Node): boolean => n.status?.state === "ready" && n.spec?.availability === "active";
const byId = <T extends { id: string }>(a: T, b: T) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** A node's label vipmesh.haproxy.weight, if it is a weight HAProxy takes (0-256); else 1. */
function weightOf(n: wire.Node): number {
  const w = Number(n.spec?.labels?.[`${LABEL}weight`] ?? 1);
  return Number.isInteger(w) && w >= 0 && w <= 256 ? w : 1;
}

/**
 * The backend's servers: every serving node on a slot of its own — the slot
 * it had in `previous` (so that a node coming or going changes only its own
 * slot, over the runtime API), else the first free one — and the free slots
 * disabled, up to a power of two (≥ 4, never fewer than before: shrinking
 * would be a reload for nothing).
 */
function slots(nodes: wire.Node[], port: number, previous: Slot[] | undefined): Slot[] {
  const count = Math.max(slotCount(nodes.length), previous?.length ?? 0);
  const out: (Slot | undefined)[] = new Array(count).fill(undefined);
  const place = (node: wire.Node, i: number) => {
    out[i] = { name: `s${i + 1}`, addr: node.status!.addr, port, weight: weightOf(node), enabled: true, node: node.description?.hostname ?? node.id };
  };
  // where each node was: its slot's index in the previous render
  const was = new Map<string, number>();
  (previous ?? []).forEach((slot, i) => slot.enabled && was.set(slot.node, i));
  const newcomers: wire.Node[] = [];
  for (const n of nodes) {
    const i = was.get(n.description?.hostname ?? n.id);
    if (i !== undefined && i < count && out[i] === undefined) place(n, i);
    else newcomers.push(n);
  }
  for (const n of newcomers) place(n, out.indexOf(undefined));
  return out.map((s, i) => s ?? { name: `s${i + 1}`, addr: "0.0.0.0", port: 0, weight: 1, enabled: false, node: "" });
}

/** The labels that shape a service's rendering, checked: a value HAProxy would read as more than a value leaves the service out. */
function labelsOf(s: wire.Service): { http: boolean; host: string; path: string; port: number; balance: string; enabled: boolean } | string {
  const labels = s.spec?.annotations?.labels ?? {};
  const get = (k: string) => labels[`${LABEL}${k}`];
  const host = get("host") ?? "";
  const path = get("path") ?? "";
  const port = Number(get("port") ?? 80);
  const balance = get("balance") ?? "";
  if (host && !HOST.test(host)) return `label ${LABEL}host ${JSON.stringify(host)} is not a host name`;
  if (path && !PATH.test(path)) return `label ${LABEL}path ${JSON.stringify(path)} is not a URL path (/ then URL characters)`;
  if (!Number.isInteger(port) || port < 1 || port > 65535) return `label ${LABEL}port ${JSON.stringify(get("port"))} is not a port number`;
  if (balance && !(BALANCE_ALGORITHMS as readonly string[]).includes(balance)) {
    return `label ${LABEL}balance ${JSON.stringify(balance)} is not one of ${BALANCE_ALGORITHMS.join(", ")}`;
  }
  const e = s.spec?.endpointSpec;
  const fromLb = e?.lbAffinity === "client-ip" ? "source" : e?.lbScheduler === "random" ? "random" : "roundrobin";
  return { http: get("mode") === "http", host, path, port, balance: balance || fromLb, enabled: get("enable") !== "false" };
}

/**
 * The template's data for a snapshot: a pure function of it and of the data
 * rendered before (`previous`, which keeps every node on its server slot).
 * What cannot be rendered safely — a label that is not a plain value, a port
 * another frontend has — is left out and said in `warnings`.
 */
export function templateData(c: ClusterSnapshot, runtime: RuntimeSettings, previous?: TemplateData): TemplateData {
  const nodes = [...c.nodes].sort(byId);
  const ready = nodes.filter(isReadyNode);
  // a mesh port answers on nodes that have their ingress sandbox
  const meshNodes = ready.filter((n) => n.status?.ingressAddr);
  const running = new Map<string, Set<string>>();
  for (const t of c.tasks) {
    if (!isTaskReady(t)) continue;
    const set = running.get(t.serviceId) ?? new Set<string>();
    set.add(t.nodeId);
    running.set(t.serviceId, set);
  }
  const previousSlots = new Map((previous?.backends ?? []).map((b) => [b.name, b.servers]));

  const data: TemplateData = {
    version: c.version,
    nodes: nodes.map((n) => ({ id: n.id, hostname: n.description?.hostname ?? "", addr: n.status?.addr ?? "", ready: isReadyNode(n) })),
    tcp: [],
    http: [],
    backends: [],
    udp: [],
    warnings: [],
    runtime,
  };
  // ports HAProxy listens on, and who has each: the first to claim one keeps it
  const bound = new Map<number, string>([[runtime.statsPort, "the stats page"], ...(runtime.tlsCert ? [[443, "HTTPS"] as [number, string]] : [])]);
  /** Takes `port` for `holder` (said as `who` when it cannot); the shared HTTP frontend's ports are shared. */
  const claim = (port: number, holder: string, who: string): boolean => {
    const has = bound.get(port);
    if (has === undefined) bound.set(port, holder);
    else if (!(holder === SHARED_HTTP && has === SHARED_HTTP)) {
      data.warnings.push(`${who}: port ${port} is taken by ${has}; left out`);
      return false;
    }
    return true;
  };
  const http = new Map<number, HttpRoute[]>();
  for (const s of [...c.services].sort((a, b) => (a.spec!.annotations!.name < b.spec!.annotations!.name ? -1 : 1))) {
    const name = s.spec!.annotations!.name;
    const labels = labelsOf(s);
    if (typeof labels === "string") {
      data.warnings.push(`service ${name}: ${labels}; left out`);
      continue;
    }
    if (!labels.enabled) continue;
    let httpTaken = false;
    for (const p of s.endpoint?.ports ?? []) {
      const publishMode = p.publishMode === "host" ? "host" : "ingress";
      if (p.protocol === "udp") {
        data.udp.push({ service: name, port: p.publishedPort, publishMode });
        data.warnings.push(`service ${name}: udp/${p.publishedPort} cannot go through HAProxy 2.6 (no UDP proxying): reach it at a node's address`);
        continue;
      }
      if (p.protocol !== "tcp" || !p.publishedPort) continue; // SCTP: neither can HAProxy
      const asHttp: boolean = labels.http && !httpTaken;
      const who = `service ${name} (${publishMode} port ${p.publishedPort})`;
      if (!(asHttp ? claim(labels.port, SHARED_HTTP, who) : claim(p.publishedPort, `service ${name}`, who))) continue;
      httpTaken ||= asHttp;
      const serving = publishMode === "host" ? ready.filter((n) => running.get(s.id)?.has(n.id)) : meshNodes;
      const backend: Backend = {
        name: `be_${name}_${p.publishedPort}`,
        service: name,
        mode: asHttp ? "http" : "tcp",
        balance: labels.balance,
        publishMode,
        port: p.publishedPort,
        servers: slots(serving, p.publishedPort, previousSlots.get(`be_${name}_${p.publishedPort}`)),
      };
      data.backends.push(backend);
      if (!asHttp) {
        data.tcp.push({ name: `ft_tcp_${p.publishedPort}`, port: p.publishedPort, backend: backend.name });
        continue;
      }
      const route = { backend: backend.name, host: labels.host, path: labels.path, acl: "" };
      route.acl = [route.host && `{ hdr(host) -i ${route.host} }`, route.path && `{ path_beg ${route.path} }`].filter(Boolean).join(" ");
      const routes = http.get(labels.port) ?? [];
      routes.push(route);
      http.set(labels.port, routes);
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

const SHARED_HTTP = "the shared HTTP frontend";
