// Everything the manager hands out — subnets, VNIs, VIPs and their firewall
// marks, task addresses, published ports — in one place. Allocations live in the objects themselves
// (network.ipam, service.endpoint, task.networks), so after a restart the
// allocator is rebuilt from the store and never hands out anything twice.
// Every allocation made inside a transaction is undone if it fails.

import {
  type AddressHolders,
  AddressPool,
  FwmarkAllocator,
  type Network,
  type NetworkSpec,
  PublishedPortAllocator,
  type Service,
  type Task,
  VniAllocator,
  alreadyExists,
  checkSubnetFree,
  gatewayOf,
  invalid,
  isTerminal,
  nextFreeSubnet,
  precondition,
  publishedPortConflict,
  type PortConfig,
  type ReservedPort,
  subnetsTaken,
  type VirtualIp,
} from "@vipmesh/core";
import type { ClusterStore, Tx } from "./store/cluster-store.ts";

export interface AllocatorOptions {
  /** Pool that networks without --subnet get a /24 from. */
  addressPool?: string;
  /** What the nodes keep for themselves; the manager adds its API ports once it listens. */
  reserved?: HostReservations;
}

/** Subnets, addresses and ports of the hosts that no network or service may take. */
export interface HostReservations {
  /** `--reserved-subnets`. */
  subnets: string[];
  /** The manager's own IPv4 listen addresses. */
  managerAddrs: string[];
  /** `--reserved-ports` and the manager's API ports. */
  ports: ReservedPort[];
}

export class Allocator {
  private readonly pools = new Map<string, AddressPool>();
  private vnis = new VniAllocator();
  private ports = new PublishedPortAllocator();
  private fwmarks = new FwmarkAllocator();

  private readonly reserved: HostReservations;

  constructor(private readonly options: AllocatorOptions = {}) {
    this.reserved = options.reserved ?? { subnets: [], managerAddrs: [], ports: [] };
  }

  /** Rebuilds allocation state from what the store holds, from nothing (at start, and after other managers' changes). */
  restore(store: ClusterStore): void {
    this.pools.clear();
    this.vnis = new VniAllocator();
    this.ports = new PublishedPortAllocator();
    this.fwmarks = new FwmarkAllocator();
    for (const n of store.list("network")) this.claimNetwork(n);
    for (const s of store.list("service")) {
      for (const p of s.endpoint.ports) if (p.publishMode === "ingress") this.ports.allocate(p.protocol, p.publishedPort, s.spec.annotations.name);
      for (const v of s.endpoint.virtualIps) {
        this.pools.get(v.networkId)?.reserve(v.addr);
        if (v.fwmark) this.fwmarks.take(v.fwmark);
      }
    }
    for (const t of store.list("task")) {
      if (isTerminal(t.status.state)) continue;
      for (const a of t.networks) for (const addr of a.addresses) this.pools.get(a.networkId)?.reserve(addr);
    }
    const ingress = store.ingressNetwork();
    for (const n of store.list("node")) if (ingress && n.status.ingressAddr) this.pools.get(ingress.id)?.reserve(n.status.ingressAddr);
  }

  private claimNetwork(n: Network): void {
    const pool = new AddressPool(n.ipam.subnet, n.spec.name);
    pool.reserve(n.ipam.gateway);
    this.pools.set(n.id, pool);
    this.vnis.take(n.vni);
  }

  // ---- networks ------------------------------------------------------------

  allocateNetwork(tx: Tx, id: string, spec: NetworkSpec): Pick<Network, "ipam" | "vni"> {
    const holders: AddressHolders = {
      networks: tx.list("network"),
      nodes: tx.list("node"),
      managerAddrs: this.reserved.managerAddrs,
      reservedSubnets: this.reserved.subnets,
    };
    const requested = spec.ipam[0]?.subnet;
    if (requested) checkSubnetFree(requested, holders);
    const subnet = requested ?? nextFreeSubnet(subnetsTaken(holders), this.options.addressPool);
    const ipam = { subnet, gateway: gatewayOf(subnet) };
    const vni = this.vnis.next();
    tx.onRollback(() => this.vnis.release(vni));
    const pool = new AddressPool(subnet, spec.name);
    pool.reserve(ipam.gateway);
    this.pools.set(id, pool);
    tx.onRollback(() => this.pools.delete(id));
    return { ipam, vni };
  }

  releaseNetwork(tx: Tx, n: Network): void {
    const pool = this.pools.get(n.id);
    this.pools.delete(n.id);
    this.vnis.release(n.vni);
    tx.onRollback(() => {
      if (pool) this.pools.set(n.id, pool);
      this.vnis.take(n.vni);
    });
  }

  // ---- addresses -----------------------------------------------------------

  allocateAddress(tx: Tx, networkId: string): string {
    const pool = this.pools.get(networkId);
    if (!pool) throw invalid(`network ${networkId} has no address pool`);
    const addr = pool.allocate();
    tx.onRollback(() => pool.release(addr));
    return addr;
  }

  releaseAddress(tx: Tx, networkId: string, addr: string): void {
    const pool = this.pools.get(networkId);
    if (!pool?.has(addr)) return;
    pool.release(addr);
    tx.onRollback(() => pool.reserve(addr));
  }

  // ---- VIPs ----------------------------------------------------------------

  /** A VIP on the network, with its firewall mark. */
  allocateVip(tx: Tx, networkId: string): VirtualIp {
    const addr = this.allocateAddress(tx, networkId);
    return { networkId, addr, fwmark: this.allocateFwmark(tx) };
  }

  /** The VIP as it is, with a mark if it was stored without one. */
  keepVip(tx: Tx, v: VirtualIp): VirtualIp {
    return v.fwmark ? v : { ...v, fwmark: this.allocateFwmark(tx) };
  }

  releaseVip(tx: Tx, v: VirtualIp): void {
    this.releaseAddress(tx, v.networkId, v.addr);
    const mark = v.fwmark;
    if (!mark || !this.fwmarks.has(mark)) return;
    this.fwmarks.release(mark);
    tx.onRollback(() => this.fwmarks.take(mark));
  }

  private allocateFwmark(tx: Tx): number {
    const mark = this.fwmarks.next();
    tx.onRollback(() => this.fwmarks.release(mark));
    return mark;
  }

  releaseTaskAddresses(tx: Tx, t: Task): void {
    for (const a of t.networks) for (const addr of a.addresses) this.releaseAddress(tx, a.networkId, addr);
  }

  /** Takes back the addresses a finished task had, if every one is still free; false (and nothing taken) otherwise. */
  reclaimTaskAddresses(tx: Tx, t: Task): boolean {
    const wanted = t.networks.flatMap((a) => a.addresses.map((addr) => ({ pool: this.pools.get(a.networkId), addr })));
    if (wanted.some((w) => !w.pool || w.pool.has(w.addr))) return false;
    for (const { pool, addr } of wanted) {
      pool!.reserve(addr);
      tx.onRollback(() => pool!.release(addr));
    }
    return true;
  }

  // ---- published ports -----------------------------------------------------

  /** Assigns published ports for `wanted`, keeping those `current` already has. */
  allocatePorts(tx: Tx, owner: string, wanted: PortConfig[], current: PortConfig[]): PortConfig[] {
    const out: PortConfig[] = [];
    const kept = new Set<PortConfig>();
    const services = wanted.length > 0 ? tx.list("service") : [];
    const conflict = (p: PortConfig) => publishedPortConflict(owner, p, services, this.reserved.ports);
    for (const p of wanted) {
      if (p.publishMode === "host") {
        const why = conflict(p);
        if (why) throw precondition(why);
        out.push(p);
        continue;
      }
      // a port without a published number keeps the one it was given before
      const prior =
        p.publishedPort === 0
          ? current.find((c) => !kept.has(c) && c.publishMode === "ingress" && c.protocol === p.protocol && c.targetPort === p.targetPort)
          : undefined;
      if (prior) kept.add(prior);
      const requested = prior?.publishedPort ?? p.publishedPort;
      const alreadyMine = this.ports.ownerOf(p.protocol, requested) === owner && requested !== 0;
      const why = requested === 0 ? undefined : conflict({ ...p, publishedPort: requested });
      if (why) throw precondition(why);
      const port = this.ports.allocate(p.protocol, requested, owner, (n) => conflict({ ...p, publishedPort: n }) !== undefined);
      if (!alreadyMine) tx.onRollback(() => this.ports.release(p.protocol, port));
      if (out.some((o) => o.publishMode === "ingress" && o.protocol === p.protocol && o.publishedPort === port)) {
        throw alreadyExists(`published port ${port}/${p.protocol} is given twice`);
      }
      out.push({ ...p, publishedPort: port });
    }
    // release what `current` had and `out` no longer has
    for (const c of current) {
      if (c.publishMode !== "ingress") continue;
      if (out.some((o) => o.publishMode === "ingress" && o.protocol === c.protocol && o.publishedPort === c.publishedPort)) continue;
      this.ports.release(c.protocol, c.publishedPort);
      tx.onRollback(() => this.ports.allocate(c.protocol, c.publishedPort, owner));
    }
    return out;
  }

  releaseService(tx: Tx, s: Service): void {
    this.allocatePorts(tx, s.spec.annotations.name, [], s.endpoint.ports);
    for (const v of s.endpoint.virtualIps) this.releaseVip(tx, v);
  }
}
