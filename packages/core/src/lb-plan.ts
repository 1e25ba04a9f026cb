// The load-balancing plan of one task sandbox: every VIP it can reach and the
// ready task addresses behind it, in a canonical order, so that a dataplane
// (nftables maps, IPVS) can render it and diff two of them without knowing
// anything of services, tasks or networks.

import { addrOf, parseIpv4 } from "./ipv4.ts";
import type { NetworkView, ViewEndpoint, ViewService } from "./network-view.ts";
import { LB_SCHEDULER_NAMES, type LbSchedulerName } from "./types.ts";
import { DEFAULT_LB_AFFINITY_TIMEOUT_S } from "./validation.ts";

/** How a new connection to a VIP picks its backend: "random" is also what no scheduler asked for means (each dataplane's default). */
export type LbScheduler = LbSchedulerName;

export interface LbBackend {
  /** Task address on the VIP's network, no prefix. */
  ip: string;
  /** Share of new connections; 0 = draining (keeps its connections, gets no new ones). */
  weight: number;
}

/** One VIP of one service (a service with VIPs on two of the sandbox's networks has two). */
export interface LbService {
  serviceId: string;
  name: string;
  /** No prefix. */
  vip: string;
  /** The VIP's firewall mark (IPVS dataplane); absent when the manager gave none. */
  fwmark?: number;
  scheduler: LbScheduler;
  /**
   * Client-IP affinity: a client's new connections go to the backend its last
   * one went to, while that backend has weight > 0 and until this many
   * seconds pass without a new connection. Absent: none.
   */
  affinityTimeoutS?: number;
  /** Ready endpoints on the VIP's network, by address. */
  backends: LbBackend[];
}

export interface LbPlan {
  /** By VIP. */
  services: LbService[];
}

/** The size of the space `numgen random mod 65536` draws from, which backends share. */
export const LB_SLOT_SPACE = 65536;
/** IPVS's limit, kept so that either dataplane accepts the same weights. */
export const LB_MAX_WEIGHT = 65535;

export const emptyLbPlan = (): LbPlan => ({ services: [] });

const byIp = (a: string, b: string): number => (parseIpv4(a) ?? 0) - (parseIpv4(b) ?? 0) || (a < b ? -1 : a > b ? 1 : 0);
const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * The plan of a sandbox attached to `networkIds`: every vip-mode service with a
 * VIP on one of them, balanced to the service's ready endpoints on that same
 * network (an endpoint on another network is not routable from this one).
 */
export function lbPlanFor(view: NetworkView, networkIds: ReadonlySet<string>): LbPlan {
  const byService = new Map<string, ViewEndpoint[]>();
  for (const e of view.endpoints.values()) {
    if (!e.ready || !networkIds.has(e.networkId)) continue;
    const list = byService.get(e.serviceId);
    if (list) list.push(e);
    else byService.set(e.serviceId, [e]);
  }
  const services: LbService[] = [];
  for (const svc of view.services.values()) services.push(...lbServicesOf(svc, byService.get(svc.id) ?? [], networkIds));
  return canonicalLbPlan({ services });
}

/**
 * What one service adds to the plan of a sandbox on `networkIds`: one entry per
 * VIP of it on them (none in dnsrr mode), from its endpoints (any order; those
 * not ready or on another network are passed over).
 */
export function lbServicesOf(svc: ViewService, endpoints: Iterable<ViewEndpoint>, networkIds: ReadonlySet<string>): LbService[] {
  if (svc.endpointMode !== "vip") return [];
  const scheduler: LbScheduler = (LB_SCHEDULER_NAMES as readonly string[]).includes(svc.lbScheduler) ? (svc.lbScheduler as LbScheduler) : "random";
  const ready = [...endpoints].filter((e) => e.ready).sort((a, b) => byText(a.key, b.key));
  const out: LbService[] = [];
  for (const v of svc.virtualIps) {
    if (!networkIds.has(v.networkId)) continue;
    const vip = addrOf(v.addr);
    if (parseIpv4(vip) === undefined) continue;
    // one backend per address: should an old task and its replacement both claim one, the first by key wins
    const backends = new Map<string, LbBackend>();
    for (const e of ready) {
      if (e.networkId !== v.networkId) continue;
      const ip = addrOf(e.addr);
      if (parseIpv4(ip) === undefined || backends.has(ip)) continue;
      backends.set(ip, { ip, weight: checkedWeight(e.weight ?? 1, e) });
    }
    out.push({
      serviceId: svc.id,
      name: svc.name,
      vip,
      ...(v.fwmark ? { fwmark: v.fwmark } : {}),
      scheduler,
      ...(svc.lbAffinity === "client-ip" ? { affinityTimeoutS: svc.lbAffinityTimeoutS || DEFAULT_LB_AFFINITY_TIMEOUT_S } : {}),
      backends: [...backends.values()].sort((a, b) => byIp(a.ip, b.ip)),
    });
  }
  return out;
}

function checkedWeight(w: number, e: ViewEndpoint): number {
  if (!Number.isInteger(w) || w < 0 || w > LB_MAX_WEIGHT) {
    throw new RangeError(`endpoint ${e.key}: weight ${w} is not an integer in 0-${LB_MAX_WEIGHT}`);
  }
  return w;
}

/**
 * Sorted by VIP, backends by address. The allocator never gives one VIP to two
 * services; should a stale view do so anyway, the first by service ID keeps it
 * so that every node renders the same thing and the kernel never sees two
 * owners of one key.
 */
export function canonicalLbPlan(plan: LbPlan): LbPlan {
  // each VIP parsed once, not in every comparison: the agent sorts every VIP of the view per change
  const keyed = plan.services.map((s) => ({ s, n: parseIpv4(s.vip) ?? 0 }));
  keyed.sort((a, b) => a.n - b.n || byText(a.s.vip, b.s.vip) || byText(a.s.serviceId, b.s.serviceId));
  const sorted = keyed.map((k) => k.s);
  const out: LbService[] = [];
  for (const s of sorted) {
    if (out.length > 0 && out[out.length - 1]!.vip === s.vip) continue;
    out.push({ ...s, backends: [...s.backends].sort((a, b) => byIp(a.ip, b.ip)) });
  }
  return { services: out };
}

/** A contiguous, inclusive range of slots. */
export interface SlotSlice {
  lo: number;
  hi: number;
}

/**
 * Splits 0 … space-1 into contiguous slices in the order of `weights`, each in
 * proportion to its weight: every positive weight gets at least one slot (a
 * weight-1 backend beside a weight-65535 one is still reachable), weight 0 gets
 * none (undefined: drain), and the slices cover the whole space exactly when
 * any weight is positive. Deterministic: the same weights always give the same
 * slices, so every node and every resync render identical elements.
 */
export function slotSlices(weights: readonly number[], space = LB_SLOT_SPACE): (SlotSlice | undefined)[] {
  for (const w of weights) {
    if (!Number.isInteger(w) || w < 0) throw new RangeError(`weight ${w} is not a non-negative integer`);
  }
  const positive = weights.filter((w) => w > 0).length;
  if (positive > space) throw new RangeError(`${positive} backends do not fit in ${space} slots`);
  const total = weights.reduce((a, b) => a + b, 0);
  if (!Number.isSafeInteger(total * space)) throw new RangeError(`weights too large: ${total}`);
  // one slot each first, then the rest by cumulative floor, which sums exactly to the rest
  const rest = space - positive;
  const out: (SlotSlice | undefined)[] = [];
  let cumulative = 0;
  let next = 0;
  let seen = 0;
  for (const w of weights) {
    if (w === 0) {
      out.push(undefined);
      continue;
    }
    const before = Math.floor((cumulative * rest) / total);
    cumulative += w;
    seen++;
    const size = 1 + Math.floor((cumulative * rest) / total) - before;
    out.push({ lo: next, hi: next + size - 1 });
    next += size;
  }
  if (positive > 0 && (next !== space || seen !== positive)) throw new Error("slot slices do not cover the space");
  return out;
}

/** The backends that get new connections, each with its slice of the slot space. */
export function backendSlices(backends: readonly LbBackend[], space = LB_SLOT_SPACE): (LbBackend & SlotSlice)[] {
  const slices = slotSlices(
    backends.map((b) => b.weight),
    space,
  );
  const out: (LbBackend & SlotSlice)[] = [];
  backends.forEach((b, i) => {
    const s = slices[i];
    if (s) out.push({ ...b, ...s });
  });
  return out;
}

/** Nothing to program for it: the same scheduler, affinity and backends (address and weight, in order). */
export const sameLbService = (a: LbService, b: LbService): boolean =>
  a === b ||
  (a.scheduler === b.scheduler &&
    a.fwmark === b.fwmark &&
    a.affinityTimeoutS === b.affinityTimeoutS &&
    a.backends.length === b.backends.length &&
    a.backends.every((x, i) => x.ip === b.backends[i]!.ip && x.weight === b.backends[i]!.weight));

/** A VIP that differs between two plans: as it was (absent: new), as it is (absent: gone). */
export interface LbPlanChange {
  before?: LbService;
  after?: LbService;
}

/**
 * The VIPs of two plans that differ: one merge walk over both in their
 * canonical order (canonicalLbPlan), comparing values; an object found in both
 * (SandboxDerivation keeps those of unchanged services) is passed at once, and
 * a VIP is parsed only where the walks disagree. Out of order, a VIP in both
 * may come out as one gone and one new: more work for the caller, never a
 * change missed.
 */
export function lbPlanChanges(prev: LbPlan, next: LbPlan): LbPlanChange[] {
  const out: LbPlanChange[] = [];
  const a = prev.services;
  const b = next.services;
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    const x = a[i];
    const y = b[j];
    if (x && y && x.vip === y.vip) {
      if (!sameLbService(x, y)) out.push({ before: x, after: y });
      i++;
      j++;
    } else if (x && (!y || (parseIpv4(x.vip) ?? -1) < (parseIpv4(y.vip) ?? -1))) {
      out.push({ before: x });
      i++;
    } else {
      out.push({ after: y! });
      j++;
    }
  }
  return out;
}
