// Address management for overlay networks: picking subnets and handing out
// addresses in them.

import { exhausted, invalid, precondition } from "./errors.ts";
import { type Cidr, cidrContains, cidrsOverlap, formatCidr, formatIpv4, parseCidr, parseIpv4 } from "./ipv4.ts";
import type { Network, Node } from "./types.ts";

export const DEFAULT_ADDRESS_POOL = "10.0.0.0/8";
export const DEFAULT_SUBNET_SIZE = 24;

/**
 * The first subnet of `size` inside `pool` that overlaps none of `taken`
 * (like swarm's default address pool).
 */
export function nextFreeSubnet(
  taken: readonly string[],
  pool = DEFAULT_ADDRESS_POOL,
  size = DEFAULT_SUBNET_SIZE,
): string {
  const p = parseCidr(pool);
  if (!p) throw invalid(`address pool ${pool} is not a valid CIDR`);
  const used = taken.map((t) => parseCidr(t)).filter((c): c is Cidr => c !== undefined);
  const step = 2 ** (32 - size);
  for (let base = p.base; base + step <= p.base + p.size; base += step) {
    const candidate: Cidr = { base, prefix: size, size: step };
    const clash = used.find((u) => cidrsOverlap(u, candidate));
    // jump past the clashing subnet instead of walking through it /24 by /24
    if (clash) base = Math.max(base, clash.base + clash.size - step);
    else return formatCidr(candidate);
  }
  throw exhausted(`no free /${size} left in the address pool ${pool}; remove a network or give --subnet`);
}

/** The existing subnet that `subnet` overlaps, if any. */
export function findOverlap(subnet: string, taken: readonly string[]): string | undefined {
  const c = parseCidr(subnet);
  if (!c) return undefined;
  return taken.find((t) => {
    const o = parseCidr(t);
    return o !== undefined && cidrsOverlap(c, o);
  });
}

/**
 * What already holds addresses in a cluster, which an overlay subnet must
 * leave alone: routes to the overlay would take the hosts' own traffic.
 */
export interface AddressHolders {
  networks: readonly Network[];
  /** Their advertise addresses. */
  nodes: readonly Node[];
  /** The manager's own IPv4 listen addresses. */
  managerAddrs: readonly string[];
  /** `--reserved-subnets`: the underlay, say. */
  reservedSubnets: readonly string[];
}

/**
 * Refuses an overlay subnet that overlaps a network or a reserved subnet, or
 * holds a node's or the manager's address. FAILED_PRECONDITION, not
 * INVALID_ARGUMENT: the subnet is valid, and fine in another cluster.
 */
export function checkSubnetFree(subnet: string, holders: AddressHolders): void {
  const network = holders.networks.find((n) => findOverlap(subnet, [n.ipam.subnet]));
  if (network) {
    throw precondition(`subnet ${subnet} overlaps ${network.ipam.subnet} of network ${network.spec.name}; choose another (vipmesh network ls shows them)`);
  }
  const reserved = findOverlap(subnet, holders.reservedSubnets);
  if (reserved) {
    throw precondition(`subnet ${subnet} overlaps ${reserved}, which the manager keeps out of overlays (--reserved-subnets); choose another`);
  }
  const host = hostAddresses(holders).find((h) => findOverlap(subnet, [`${h.addr}/32`]));
  if (host) {
    throw precondition(`subnet ${subnet} holds ${host.addr}, the address of ${host.owner}: its traffic would go into the overlay; choose another subnet`);
  }
}

/** `--reserved-subnets 192.168.100.0/24,172.16.0.0/12`: CIDRs of any size, host bits zero. */
export function parseReservedSubnets(text: string): string[] {
  const subnets = text.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const bad = subnets.find((s) => !parseCidr(s));
  if (bad !== undefined) throw invalid(`--reserved-subnets: "${bad}" is not an IPv4 CIDR with its host bits zero, like 192.168.100.0/24`);
  return subnets;
}

/** What an automatic subnet skips: networks, reserved subnets and the hosts' addresses. */
export const subnetsTaken = (holders: AddressHolders): string[] => [
  ...holders.networks.map((n) => n.ipam.subnet),
  ...holders.reservedSubnets,
  ...hostAddresses(holders).map((h) => `${h.addr}/32`),
];

const hostAddresses = (holders: AddressHolders): { addr: string; owner: string }[] => [
  ...holders.nodes.map((n) => ({ addr: n.status.addr, owner: `node ${n.description.hostname}` })),
  ...holders.managerAddrs.map((addr) => ({ addr, owner: "the manager" })),
];

/**
 * Refuses a node whose advertise address lies in an overlay subnet (the
 * ingress network's too): the overlay's routes would take the node's own
 * traffic. FAILED_PRECONDITION: the address is valid, the cluster's networks make it unusable.
 */
export function checkNodeAddress(addr: string, networks: readonly Network[]): void {
  const n = networks.find((net) => findOverlap(`${addr}/32`, [net.ipam.subnet]));
  if (n) {
    throw precondition(
      `advertise address ${addr} lies in ${n.ipam.subnet} of overlay network ${n.spec.name}: ` +
        "give the agent an --advertise-addr outside every overlay subnet (vipmesh network ls shows them)",
    );
  }
}

export const gatewayOf = (subnet: string): string => formatIpv4(parseCidr(subnet)!.base + 1);

/**
 * Addresses of one subnet, handed out serially: each allocation takes the next
 * free address after the last one given, wrapping around, so a released
 * address is not reused until the rest of the subnet has been used (clients
 * caching an old task's address do not reach a new task by accident).
 */
export class AddressPool {
  readonly cidr: Cidr;
  private readonly used = new Set<number>();
  private cursor: number;

  constructor(
    readonly subnet: string,
    /** Label used in errors, e.g. the network's name. */
    readonly owner: string,
  ) {
    const c = parseCidr(subnet);
    if (!c) throw invalid(`${subnet} is not a valid subnet`);
    this.cidr = c;
    this.cursor = c.base; // network address; the first allocation looks past it
  }

  private get first(): number {
    return this.cidr.base + 1;
  }
  private get last(): number {
    return this.cidr.base + this.cidr.size - 2; // broadcast excluded
  }

  get capacity(): number {
    return Math.max(0, this.last - this.first + 1);
  }
  get inUse(): number {
    return this.used.size;
  }

  /** Returns the next free address as "a.b.c.d/prefix". */
  allocate(): string {
    if (this.used.size >= this.capacity) {
      throw exhausted(
        `network ${this.owner} has no free address left in ${this.subnet} (${this.used.size} in use); ` +
          `scale something down or use a larger subnet`,
      );
    }
    let n = this.cursor;
    do {
      n = n >= this.last ? this.first : n + 1;
    } while (this.used.has(n));
    this.used.add(n);
    this.cursor = n;
    return `${formatIpv4(n)}/${this.cidr.prefix}`;
  }

  /** Marks a known address as used (rebuilding after a restart, or the gateway). */
  reserve(addr: string): void {
    const n = this.toNumber(addr);
    if (this.used.has(n)) throw precondition(`address ${addr} is already in use on network ${this.owner}`);
    this.used.add(n);
    if (n > this.cursor) this.cursor = n;
  }

  release(addr: string): void {
    this.used.delete(this.toNumber(addr));
  }

  has(addr: string): boolean {
    return this.used.has(this.toNumber(addr));
  }

  private toNumber(addr: string): number {
    const [ip, prefix] = addr.split("/");
    const n = parseIpv4(ip!);
    const wrongPrefix = prefix !== undefined && Number(prefix) !== this.cidr.prefix;
    if (n === undefined || wrongPrefix || !cidrContains(this.cidr, n) || n < this.first || n > this.last) {
      throw invalid(`address ${addr} is not a usable address of ${this.subnet}`);
    }
    return n;
  }
}
