// What the sandboxes on one set of networks get from their node's view — the
// LB plan and the DNS records — kept current from the view's deltas at a cost
// that follows the delta, not the view (made whole, both took ~0.4 s per change
// at 30k services).
//
// Both are made of per-service parts (lbServicesOf, dnsEntriesOf): a delta
// marks the services it touches, and only those are made again. Every change
// gives a new LbPlan array (renderChange diffs it against the one last applied;
// unchanged services keep their objects) and a new DnsRecords object, which
// shares its base maps with the last one and has its own copy of a small layer
// of changes above them: a sandbox answers from the records it was given until
// its agent gives it new ones, after its rules (DNS never runs ahead of the
// kernel). Once the layer grows past an eighth of the base it is folded into
// new base maps, so a lookup stays two map reads and copying is amortized.
//
// A view in which two services claim one VIP, name, reverse name or task (a
// stale view), or an alias (a service's name, or another's alias), is derived
// whole on every change, with the tie-breaks of lbPlanFor and dnsRecordsFor
// (the first by service ID; names before aliases), until it no longer does.

import {
  type DnsAddressSet,
  type DnsRecords,
  type DnsServiceEntries,
  type DnsTaskRecord,
  type Lookup,
  assembleDnsRecords,
  dnsEntriesOf,
  dnsNetworks,
  dnsSubnets,
  isDnsEndpoint,
} from "./dns-records.ts";
import { parseIpv4 } from "./ipv4.ts";
import { type LbPlan, type LbService, canonicalLbPlan, lbServicesOf } from "./lb-plan.ts";
import type { NetworkView, ViewDelta, ViewEndpoint } from "./network-view.ts";

/** A base map and a layer of changes above it (undefined: deleted). */
class Layered<V> implements Lookup<string, V> {
  constructor(
    private readonly base: ReadonlyMap<string, V>,
    private readonly top: ReadonlyMap<string, V | undefined>,
  ) {}
  get(key: string): V | undefined {
    return this.top.has(key) ? this.top.get(key) : this.base.get(key);
  }
  has(key: string): boolean {
    return this.get(key) !== undefined;
  }
}

/** One kind of record: base maps replaced whole, never changed; the layer changed in place and copied per version. */
class Table<V> {
  private base = new Map<string, V>();
  private top = new Map<string, V | undefined>();

  reset(base: Map<string, V>): void {
    this.base = base;
    this.top = new Map();
  }
  get(key: string): V | undefined {
    return this.top.has(key) ? this.top.get(key) : this.base.get(key);
  }
  set(key: string, value: V | undefined): void {
    this.top.set(key, value);
  }
  /** What a new DnsRecords object reads: the base as it is, the layer as it is now. */
  version(): Layered<V> {
    if (this.top.size > Math.max(1024, this.base.size / 8)) {
      const base = new Map(this.base);
      for (const [k, v] of this.top) {
        if (v === undefined) base.delete(k);
        else base.set(k, v);
      }
      this.reset(base);
    }
    return new Layered(this.base, new Map(this.top));
  }
}

interface Parts {
  lb: LbService[];
  dns: DnsServiceEntries | undefined;
}

export class SandboxDerivation {
  private readonly nets: ReadonlySet<string>;
  private dnsNets = new Set<string>();
  private subnets: string[] = [];
  /** Endpoints on the networks: by service, then by key. */
  private endpoints = new Map<string, Map<string, ViewEndpoint>>();
  private serviceOfEndpoint = new Map<string, string>();
  /** Task → the services of its endpoints on the networks (a task's slot names it in DNS). */
  private servicesOfTask = new Map<string, Set<string>>();
  private parts = new Map<string, Parts>();
  /** The plan's entries, in its order: by VIP. */
  private sorted: { n: number; s: LbService }[] = [];
  private readonly names = new Table<DnsAddressSet>();
  private readonly tasks = new Table<DnsTaskRecord>();
  private readonly ptr = new Table<string>();
  /** Two services claim one key: derive whole until they do not. */
  private colliding = false;

  /** The LB plan of a sandbox on the networks: a new object after every change. */
  plan: LbPlan = { services: [] };
  /** Its DNS records: a new object after every change, the last one left as it was. */
  records: DnsRecords;

  constructor(view: NetworkView, networkIds: ReadonlySet<string>) {
    this.nets = new Set(networkIds);
    this.records = { names: new Map(), tasks: new Map(), ptr: new Map(), subnets: [] };
    this.reset(view);
  }

  /** After `applyViewDelta(view, delta)`: makes again what the delta touched. */
  apply(view: NetworkView, delta: ViewDelta): void {
    if (this.colliding || delta.networks.length > 0 || delta.removedNetworks.length > 0) {
      this.reset(view);
      return;
    }
    const dirty = new Set<string>();
    for (const s of delta.services) dirty.add(s.id);
    for (const id of delta.removedServices) dirty.add(id);
    for (const key of delta.removedEndpoints) this.dropEndpoint(key, dirty);
    for (const e of delta.endpoints) {
      this.dropEndpoint(e.key, dirty);
      if (this.nets.has(e.networkId)) this.addEndpoint(e, dirty);
    }
    for (const t of delta.tasks) dirty.add(t.serviceId);
    for (const id of [...delta.tasks.map((t) => t.id), ...delta.removedTasks]) for (const sid of this.servicesOfTask.get(id) ?? []) dirty.add(sid);
    if (dirty.size === 0) return;

    // take every touched service's old parts out, then put the new ones in: a key that moves
    // between two of them in one delta is no collision
    const made = new Map<string, Parts | undefined>();
    for (const sid of dirty) {
      const old = this.parts.get(sid);
      if (old) this.takeOut(old);
      const svc = view.services.get(sid);
      if (!svc) {
        made.set(sid, undefined);
        continue;
      }
      const eps = [...(this.endpoints.get(sid)?.values() ?? [])];
      const dnsEps = eps.filter((e) => isDnsEndpoint(e, this.dnsNets));
      made.set(sid, { lb: lbServicesOf(svc, eps, this.nets), dns: dnsEntriesOf(view, svc, dnsEps, this.dnsNets) });
    }
    for (const [sid, p] of made) {
      if (!p) {
        this.parts.delete(sid);
        continue;
      }
      if (!this.putIn(p)) {
        this.reset(view);
        return;
      }
      this.parts.set(sid, p);
    }
    this.publish();
  }

  /** Everything from the view: the first time, when networks change, and while services collide. */
  private reset(view: NetworkView): void {
    this.dnsNets = dnsNetworks(view, this.nets);
    this.subnets = dnsSubnets(view, this.dnsNets);
    this.endpoints = new Map();
    this.serviceOfEndpoint = new Map();
    this.servicesOfTask = new Map();
    for (const e of view.endpoints.values()) if (this.nets.has(e.networkId)) this.addEndpoint(e);
    this.parts = new Map();
    let lbCount = 0;
    const counts = { names: 0, tasks: 0, ptr: 0 };
    for (const svc of view.services.values()) {
      const eps = [...(this.endpoints.get(svc.id)?.values() ?? [])];
      const p: Parts = {
        lb: lbServicesOf(svc, eps, this.nets),
        dns: dnsEntriesOf(
          view,
          svc,
          eps.filter((e) => isDnsEndpoint(e, this.dnsNets)),
          this.dnsNets,
        ),
      };
      this.parts.set(svc.id, p);
      lbCount += p.lb.length;
      counts.names += (p.dns?.names.length ?? 0) + (p.dns?.aliases.length ?? 0);
      counts.tasks += p.dns?.tasks.length ?? 0;
      counts.ptr += p.dns?.ptr.length ?? 0;
    }
    // put together as the whole-view functions do (lbPlanFor, dnsRecordsFor), their tie-breaks
    // saying what a collision resolves to; the counts say whether there is one
    const plan = canonicalLbPlan({ services: [...this.parts.values()].flatMap((p) => p.lb) });
    const byId = [...this.parts.keys()].sort();
    const records = assembleDnsRecords(
      byId.map((id) => this.parts.get(id)!.dns),
      this.subnets,
    );
    this.colliding =
      plan.services.length !== lbCount || records.names.size !== counts.names || records.tasks.size !== counts.tasks || records.ptr.size !== counts.ptr;
    const entries = this.colliding ? plan.services : [...this.parts.values()].flatMap((p) => p.lb);
    this.sorted = entries.map((s) => ({ n: parseIpv4(s.vip)!, s })).sort((a, b) => a.n - b.n);
    this.names.reset(records.names);
    this.tasks.reset(records.tasks);
    this.ptr.reset(records.ptr);
    this.publish();
  }

  private publish(): void {
    this.plan = { services: this.sorted.map((x) => x.s) };
    this.records = { names: this.names.version(), tasks: this.tasks.version(), ptr: this.ptr.version(), subnets: this.subnets };
  }

  private addEndpoint(e: ViewEndpoint, dirty?: Set<string>): void {
    let byKey = this.endpoints.get(e.serviceId);
    if (!byKey) this.endpoints.set(e.serviceId, (byKey = new Map()));
    byKey.set(e.key, e);
    this.serviceOfEndpoint.set(e.key, e.serviceId);
    let services = this.servicesOfTask.get(e.taskId);
    if (!services) this.servicesOfTask.set(e.taskId, (services = new Set()));
    services.add(e.serviceId);
    dirty?.add(e.serviceId);
  }

  private dropEndpoint(key: string, dirty: Set<string>): void {
    const sid = this.serviceOfEndpoint.get(key);
    if (sid === undefined) return;
    this.serviceOfEndpoint.delete(key);
    const byKey = this.endpoints.get(sid);
    const taskId = byKey?.get(key)?.taskId;
    byKey?.delete(key);
    if (byKey?.size === 0) this.endpoints.delete(sid);
    // the task's last endpoint of that service: forget the pair, or task churn would grow the index
    if (taskId !== undefined && ![...(byKey?.values() ?? [])].some((e) => e.taskId === taskId)) {
      const services = this.servicesOfTask.get(taskId);
      services?.delete(sid);
      if (services?.size === 0) this.servicesOfTask.delete(taskId);
    }
    dirty.add(sid);
  }

  /** Index in `sorted` of the first entry whose VIP is not below n. */
  private lowerBound(n: number): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.sorted[mid]!.n < n) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private takeOut(p: Parts): void {
    for (const s of p.lb) {
      const i = this.lowerBound(parseIpv4(s.vip)!);
      if (this.sorted[i]?.s.serviceId === s.serviceId) this.sorted.splice(i, 1);
    }
    for (const [k] of [...(p.dns?.names ?? []), ...(p.dns?.aliases ?? [])]) this.names.set(k, undefined);
    for (const [k] of p.dns?.tasks ?? []) this.tasks.set(k, undefined);
    for (const [k] of p.dns?.ptr ?? []) this.ptr.set(k, undefined);
  }

  /** False when a key is someone else's already. */
  private putIn(p: Parts): boolean {
    for (const s of p.lb) {
      const n = parseIpv4(s.vip)!;
      const i = this.lowerBound(n);
      if (this.sorted[i]?.n === n) return false;
      this.sorted.splice(i, 0, { n, s });
    }
    const dns = p.dns;
    if (!dns) return true;
    const names = [...dns.names, ...dns.aliases];
    if (names.some(([k]) => this.names.get(k)) || dns.tasks.some(([k]) => this.tasks.get(k)) || dns.ptr.some(([k]) => this.ptr.get(k))) return false;
    for (const [k, v] of names) this.names.set(k, v);
    for (const [k, v] of dns.tasks) this.tasks.set(k, v);
    for (const [k, v] of dns.ptr) this.ptr.set(k, v);
    return true;
  }
}
