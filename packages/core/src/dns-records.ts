// What the embedded DNS of one sandbox can answer: the names of the services
// and tasks on the networks that sandbox is attached to, and nothing else
// (network isolation, like swarm). Built from the node's network view each
// time it changes; the DNS server only looks names up in it.
//
// Names:
//   <service>               vip mode: the service's VIPs on the asker's networks;
//                           dnsrr mode: its ready task addresses (shuffled per answer)
//   tasks.<service>         ready task addresses, in both modes
//   <service>.<slot>.<task> one task's addresses (a global service's task: <service>.<node>.<task>),
//                           whether ready or not: it names one task, it does not balance
//   PTR                     task address → its task name, VIP → the service name
//   <alias>, tasks.<alias>  as <service> and tasks.<service>, for each alias the service has on
//                           one of the asker's networks, with that network's VIPs and tasks only
//                           (Docker's per-network aliases; compose's service names)
// The ingress network is left out: like swarm's, it carries the routing mesh, not discovery.

import { addrOf, parseIpv4 } from "./ipv4.ts";
import type { NetworkView, ViewEndpoint, ViewService } from "./network-view.ts";

export interface DnsAddressSet {
  /** IPv4 addresses, no prefix, sorted. */
  addrs: string[];
  /** dnsrr answers: a resolver shuffles them per answer so clients spread out. */
  shuffle: boolean;
}

export interface DnsTaskRecord {
  /** Lowercase. */
  serviceName: string;
  /** The middle label of the task's name (slot, or node ID for a global service's task); undefined when the view does not say. */
  middle: string | undefined;
  addrs: string[];
}

/** What answering needs of a map: a Map, or layers of them (SandboxDerivation). */
export interface Lookup<K, V> {
  get(key: K): V | undefined;
  has(key: K): boolean;
}

export interface DnsRecords {
  /** Lowercase names, no trailing dot: `<service>` and `tasks.<service>`. */
  names: Lookup<string, DnsAddressSet>;
  /** By lowercase task ID. */
  tasks: Lookup<string, DnsTaskRecord>;
  /** `d.c.b.a.in-addr.arpa` → name. */
  ptr: Lookup<string, string>;
  /** The asker's networks' subnets: reverse names inside them are ours to deny. */
  subnets: string[];
}

/** DnsRecords made at once, as plain maps. */
export interface DnsRecordMaps extends DnsRecords {
  names: Map<string, DnsAddressSet>;
  tasks: Map<string, DnsTaskRecord>;
  ptr: Map<string, string>;
}

export const emptyDnsRecords = (): DnsRecordMaps => ({ names: new Map(), tasks: new Map(), ptr: new Map(), subnets: [] });

/** What one service puts in a sandbox's records. */
export interface DnsServiceEntries {
  /** Lowercase; the key of its first entry of `names`. */
  name: string;
  names: [string, DnsAddressSet][];
  /** `<alias>` and `tasks.<alias>`: they yield to service names (assembleDnsRecords). */
  aliases: [string, DnsAddressSet][];
  tasks: [string, DnsTaskRecord][];
  ptr: [string, string][];
}

/** Lowercase, without one trailing dot. */
export const normalizeDnsName = (name: string): string => name.toLowerCase().replace(/\.$/, "");

/** "10.0.3.2" → "2.3.0.10.in-addr.arpa". */
export const reverseDnsName = (ip: string): string => `${ip.split(".").reverse().join(".")}.in-addr.arpa`;

const byIp = (a: string, b: string): number => (parseIpv4(a) ?? 0) - (parseIpv4(b) ?? 0);

/** A view endpoint may one day carry its task's slot; until then only this node's tasks say it. */
const slotOf = (view: NetworkView, e: ViewEndpoint): number | undefined =>
  view.tasks.get(e.taskId)?.slot ?? (e as ViewEndpoint & { slot?: number }).slot;

/** The networks of `networkIds` whose names a sandbox on them resolves: the ingress network carries no discovery. */
export const dnsNetworks = (view: NetworkView, networkIds: ReadonlySet<string>): Set<string> =>
  new Set([...networkIds].filter((id) => view.networks.get(id)?.ingress !== true));

/** The subnets of those networks, whose reverse names are ours to deny. */
export const dnsSubnets = (view: NetworkView, nets: ReadonlySet<string>): string[] =>
  [...nets].map((id) => view.networks.get(id)?.subnet).filter((s): s is string => s !== undefined);

/** An endpoint DNS can name: on one of `nets`, with an IPv4 address. */
export const isDnsEndpoint = (e: ViewEndpoint, nets: ReadonlySet<string>): boolean => nets.has(e.networkId) && parseIpv4(addrOf(e.addr)) !== undefined;

/** The records one sandbox attached to `networkIds` may see. */
export function dnsRecordsFor(view: NetworkView, networkIds: ReadonlySet<string>): DnsRecordMaps {
  const nets = dnsNetworks(view, networkIds);

  // endpoints on the asker's networks, by service
  const endpoints = new Map<string, ViewEndpoint[]>();
  for (const e of view.endpoints.values()) {
    if (!isDnsEndpoint(e, nets)) continue;
    const list = endpoints.get(e.serviceId);
    if (list) list.push(e);
    else endpoints.set(e.serviceId, [e]);
  }

  const byId = [...view.services.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return assembleDnsRecords(
    byId.map((svc) => dnsEntriesOf(view, svc, endpoints.get(svc.id) ?? [], nets)),
    dnsSubnets(view, nets),
  );
}

/**
 * The records made of services' entries, given in service-ID order: names are
 * unique in the cluster, so should a stale view give one to two services, the
 * first by ID keeps it.
 */
export function assembleDnsRecords(entries: Iterable<DnsServiceEntries | undefined>, subnets: string[]): DnsRecordMaps {
  const records = emptyDnsRecords();
  records.subnets.push(...subnets);
  const kept: DnsServiceEntries[] = [];
  for (const e of entries) {
    if (!e || records.names.has(e.name)) continue;
    kept.push(e);
    for (const [k, v] of e.names) records.names.set(k, v);
    for (const [k, v] of e.tasks) records.tasks.set(k, v);
    for (const [k, v] of e.ptr) records.ptr.set(k, v);
  }
  // aliases after every service name: a name is its service's; an alias two services share is the first's
  for (const e of kept) for (const [k, v] of e.aliases) if (!records.names.has(k)) records.names.set(k, v);
  return records;
}

/**
 * What one service puts in the records of a sandbox on `nets` (dnsNetworks),
 * from its endpoints there (isDnsEndpoint); undefined when it is on none of
 * them: a dnsrr service has no VIP to show its networks, so until it has a
 * task on one of the asker's, its name does not exist there either.
 */
export function dnsEntriesOf(view: NetworkView, svc: ViewService, eps: readonly ViewEndpoint[], nets: ReadonlySet<string>): DnsServiceEntries | undefined {
  const name = normalizeDnsName(svc.name);
  const vips = svc.endpointMode === "vip" ? svc.virtualIps.filter((v) => nets.has(v.networkId)).map((v) => addrOf(v.addr)) : [];
  if (vips.length === 0 && eps.length === 0) return undefined;
  const out: DnsServiceEntries = { name, names: [], aliases: [], tasks: [], ptr: [] };
  out.names.push(...serviceNames(svc, name, nets, eps));
  for (const vip of vips) out.ptr.push([reverseDnsName(vip), name]);
  for (const [alias, on] of aliasNetworks(svc, nets, name)) {
    const aliasEps = eps.filter((e) => on.has(e.networkId));
    const hasVip = svc.endpointMode === "vip" && svc.virtualIps.some((v) => on.has(v.networkId));
    if (hasVip || aliasEps.length > 0) out.aliases.push(...serviceNames(svc, alias, on, aliasEps)); // as the name: nothing to answer, no name
  }

  const tasks = new Map<string, DnsTaskRecord>();
  for (const e of eps) {
    const taskId = e.taskId.toLowerCase();
    const slot = slotOf(view, e);
    const middle = slot === undefined ? undefined : slot === 0 ? e.nodeId.toLowerCase() : String(slot);
    const addr = addrOf(e.addr);
    const t = tasks.get(taskId);
    if (t) t.addrs = [...new Set([...t.addrs, addr])].sort(byIp);
    else tasks.set(taskId, { serviceName: name, middle, addrs: [addr] });
    out.ptr.push([reverseDnsName(addr), taskName(name, middle, taskId)]);
  }
  out.tasks = [...tasks];
  return out;
}

/** `<name>` and `tasks.<name>` of a service on `nets`, from its endpoints there. */
function serviceNames(svc: ViewService, name: string, nets: ReadonlySet<string>, eps: readonly ViewEndpoint[]): [string, DnsAddressSet][] {
  const ready = [...new Set(eps.filter((e) => e.ready).map((e) => addrOf(e.addr)))].sort(byIp);
  const vips = svc.endpointMode === "vip" ? [...new Set(svc.virtualIps.filter((v) => nets.has(v.networkId)).map((v) => addrOf(v.addr)))].sort(byIp) : [];
  return [
    [name, svc.endpointMode === "vip" ? { addrs: vips, shuffle: false } : { addrs: ready, shuffle: true }],
    [`tasks.${name}`, { addrs: ready, shuffle: true }],
  ];
}

/** The service's aliases on `nets` (lowercase, its own name left out), each with the networks it is given on. */
function aliasNetworks(svc: ViewService, nets: ReadonlySet<string>, name: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const a of svc.aliases ?? []) {
    if (!nets.has(a.networkId)) continue;
    for (const alias of a.names.map(normalizeDnsName)) {
      if (alias === name || alias === "") continue;
      const on = out.get(alias);
      if (on) on.add(a.networkId);
      else out.set(alias, new Set([a.networkId]));
    }
  }
  return out;
}

/** A task's DNS name; without its slot, `<service>.<task>`, which resolves too. */
const taskName = (service: string, middle: string | undefined, taskId: string): string =>
  middle === undefined ? `${service}.${taskId}` : `${service}.${middle}.${taskId}`;

/** The A records of a name (any case, trailing dot or not), or undefined when it names nothing here. */
export function lookupDnsAddresses(records: DnsRecords, name: string): DnsAddressSet | undefined {
  const n = normalizeDnsName(name);
  const direct = records.names.get(n);
  if (direct) return direct;
  // <service>.<middle>.<task> or <service>.<task>; a service's name may have dots of its own
  const dot = n.lastIndexOf(".");
  const task = dot < 0 ? undefined : records.tasks.get(n.slice(dot + 1));
  if (!task) return undefined;
  const rest = n.slice(0, dot);
  const middle = rest.startsWith(`${task.serviceName}.`) ? rest.slice(task.serviceName.length + 1) : undefined;
  const named =
    task.middle === undefined
      ? rest === task.serviceName || (middle !== undefined && !middle.includes(".")) // the slot unknown: any middle label, or none
      : middle === task.middle;
  return named ? { addrs: task.addrs, shuffle: false } : undefined;
}

/** The PTR target of a reverse name, or undefined. */
export const lookupDnsPtr = (records: DnsRecords, name: string): string | undefined => records.ptr.get(normalizeDnsName(name));

const TASK_ID = /^[0-9a-z]{25}$/;

/**
 * Whether a name not found is the cluster's to deny (NXDOMAIN) rather than
 * the world's (forward, or SERVFAIL without upstream): a single label (a
 * service name, as swarm resolves it, and nothing the public DNS has);
 * `tasks.<label>`; a task's name (`<service>[.<middle>].<task ID>`, a
 * service's name may have dots): any name whose last label has the shape of a
 * task ID (25 base-36 characters, which no public TLD has); a reverse name
 * inside one of the asker's subnets.
 */
export function isClusterDnsName(records: DnsRecords, name: string): boolean {
  const n = normalizeDnsName(name);
  if (n === "") return false;
  const labels = n.split(".");
  if (labels.length === 1) return true;
  if (labels.length === 2 && labels[0] === "tasks") return true;
  if (TASK_ID.test(labels[labels.length - 1]!)) return true;
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\.in-addr\.arpa$/.exec(n);
  if (m) {
    const ip = parseIpv4(`${m[4]}.${m[3]}.${m[2]}.${m[1]}`);
    if (ip !== undefined) return records.subnets.some((s) => inSubnet(ip, s));
  }
  return false;
}

function inSubnet(ip: number, subnet: string): boolean {
  const [base, bits] = subnet.split("/");
  const b = parseIpv4(base ?? "");
  const prefix = Number(bits);
  if (b === undefined || !Number.isInteger(prefix) || prefix < 0 || prefix > 32) return false;
  const size = 2 ** (32 - prefix);
  return ip >= b - (b % size) && ip < b - (b % size) + size;
}
