// The nftables load-balancing ruleset of one task sandbox, from its LbPlan:
// a full `nft -f` script (first sync, resync) and a delta script (every other
// sync) that only adds and deletes elements. Every random VIP shares one rule
// over one interval map keyed by VIP . `numgen random mod 65536`, so a change
// costs what it touches, not the number of services; rr and client-IP affinity
// VIPs get small chains of their own. Why (docs/ARCHITECTURE.md, "nftables layout").

import { type LbPlan, type LbService, backendSlices, lbPlanChanges, parseIpv4 } from "@vipmesh/core";

export const TABLE = "vipmesh";
export const BACKEND_MAP = "be";
export const REJECT_SET = "vips_without_backends";
export const CHAIN_MAP = "vip_chains";
export const AFFINITY_MAP = "affinity";
export const AFFINITY_BACKENDS = "affinity_backends";
/** Clients remembered per sandbox (nft's default for a dynamic map, said): one more is balanced, not remembered. */
export const AFFINITY_SIZE = 65535;
/**
 * One `add element` statement of 60k elements fails with ENOBUFS; and nft
 * 1.0.6 stores the 1,366th element of a statement into @be with its slot
 * range byte-swapped (32768-65535 → 8388608-4294901760: half the VIP's
 * connections find no backend, and deleting the element later fails), while
 * statements of up to 1,364 load as written. 1,000 leaves a margin.
 */
export const MAX_ELEMENTS_PER_STATEMENT = 1000;
export const NAT_PRIORITY = -100;
export const FILTER_PRIORITY = 0;

const T = `ip ${TABLE}`;

export class NftRenderError extends Error {
  override name = "NftRenderError";
}

/** The chain of an rr VIP: a stable name from its address. */
export const rrChainOf = (vip: string): string => `rr_${vip.replaceAll(".", "_")}`;
/** The chain shared by random VIPs with client-IP affinity of this timeout. */
export const affinityChainOf = (timeoutS: number): string => `affinity_${timeoutS}`;

/** One element of a set or map: `key` alone is what a delete names. */
interface Element {
  key: string;
  value?: string;
}

/** What one VIP needs in the kernel. */
interface VipObjects {
  svc: LbService;
  /** Elements of @be (random). */
  slices: Element[];
  /** In @vips_without_backends. */
  rejected: boolean;
  /** Where @vip_chains sends it (rr, or affinity, with backends). */
  chain?: string;
  /** The rules of its own chain (rr). */
  ownRules?: string[];
  /** Elements of @affinity_backends: VIP . each backend taking new connections. */
  affinityBackends: Element[];
}

function checkIp(ip: string, where: string): void {
  if (parseIpv4(ip) === undefined) throw new NftRenderError(`${where}: "${ip}" is not an IPv4 address`);
}

/** A service name in a comment: a name must never end a comment line early. */
const commentSafe = (s: string): string => s.replace(/[^A-Za-z0-9._-]/g, "?");

const serviceComment = (s: LbService): string => `${s.vip} ${commentSafe(s.name)} (${commentSafe(s.serviceId)})`;

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The rr choice `numgen inc mod W map { … }`, undefined without a backend taking new connections. */
function rrChoiceOf(s: LbService): string | undefined {
  const live = s.backends.filter((b) => b.weight > 0);
  if (live.length === 0) return undefined;
  const g = live.reduce((acc, b) => gcd(acc, b.weight), 0);
  let next = 0;
  const entries = live.map((b) => {
    const n = b.weight / g;
    const key = n === 1 ? `${next}` : `${next}-${next + n - 1}`;
    next += n;
    return `${key} : ${b.ip}`;
  });
  return `numgen inc mod ${next} map { ${entries.join(", ")} }`;
}

const RANDOM_CHOICE = `ip daddr . numgen random mod 65536 map @${BACKEND_MAP}`;
const remember = (timeoutS: number) => `update @${AFFINITY_MAP} { ip saddr . ct original ip daddr timeout ${timeoutS}s : ip daddr }`;

/** The rules of an affinity chain (the header says why each): recall and check, else choose, remember, NAT. */
const affinityRules = (timeoutS: number, choice: string): string[] => [
  `ip daddr set ip saddr . ip daddr map @${AFFINITY_MAP}`,
  `ct original ip daddr . ip daddr @${AFFINITY_BACKENDS} ${remember(timeoutS)} dnat to ip daddr`,
  // a map's delete names a value too (the kernel wants one), which it ignores
  `ip daddr set ct original ip daddr delete @${AFFINITY_MAP} { ip saddr . ip daddr : ip daddr }`,
  `ip daddr set ${choice}`,
  remember(timeoutS),
  "dnat to ip daddr",
];

function objectsOf(plan: LbPlan): Map<string, VipObjects> {
  const out = new Map<string, VipObjects>();
  for (const s of plan.services) {
    checkIp(s.vip, `service ${s.serviceId}`);
    if (out.has(s.vip)) throw new NftRenderError(`VIP ${s.vip} appears twice in the plan`);
    for (const b of s.backends) checkIp(b.ip, `service ${s.serviceId} backend`);
    const t = s.affinityTimeoutS;
    if (t !== undefined && !(Number.isInteger(t) && t > 0)) throw new NftRenderError(`service ${s.serviceId}: affinity timeout ${t} is not a positive whole number of seconds`);
    const o: VipObjects = { svc: s, slices: [], rejected: false, affinityBackends: [] };
    if (s.scheduler === "rr") {
      const choice = rrChoiceOf(s);
      o.rejected = choice === undefined;
      if (choice !== undefined) {
        o.chain = rrChainOf(s.vip);
        o.ownRules = t === undefined ? [`dnat to ${choice}`] : affinityRules(t, choice);
      }
    } else {
      o.slices = backendSlices(s.backends).map((b) => ({ key: `${s.vip} . ${b.lo}-${b.hi}`, value: b.ip }));
      o.rejected = o.slices.length === 0;
      if (!o.rejected && t !== undefined) o.chain = affinityChainOf(t);
    }
    if (!o.rejected && t !== undefined) {
      o.affinityBackends = s.backends.filter((b) => b.weight > 0).map((b) => ({ key: `${s.vip} . ${b.ip}` }));
    }
    out.set(s.vip, o);
  }
  return out;
}

/** The timeouts of random affinity VIPs that take connections (objectsOf gives them a chain): each a shared chain. */
function sharedAffinityTimeouts(plan: LbPlan): number[] {
  const out = new Set<number>();
  for (const s of plan.services) {
    if (s.scheduler !== "rr" && s.affinityTimeoutS !== undefined && s.backends.some((b) => b.weight > 0)) out.add(s.affinityTimeoutS);
  }
  return [...out].sort((a, b) => a - b);
}

const elementText = (e: Element): string => (e.value === undefined ? e.key : `${e.key} : ${e.value}`);

/**
 * `add element` / `delete element` statements, at most 1,000 elements each,
 * one element a line, a comment naming the service before its first element.
 */
function elementStatements(verb: "add" | "delete", set: string, groups: { comment: string; elements: Element[] }[]): string[] {
  const out: string[] = [];
  let lines: string[] = [];
  let count = 0;
  const flush = () => {
    if (count === 0) return;
    // the last element takes no comma
    const last = lines.length - 1;
    lines[last] = lines[last]!.replace(/,$/, "");
    out.push(`${verb} element ${T} ${set} {\n${lines.join("\n")}\n}`);
    lines = [];
    count = 0;
  };
  for (const g of groups) {
    let commented = false;
    for (const e of g.elements) {
      if (count === MAX_ELEMENTS_PER_STATEMENT) {
        flush();
        commented = false;
      }
      if (!commented) lines.push(`\t# ${g.comment}`);
      commented = true;
      lines.push(`\t${verb === "delete" ? e.key : elementText(e)},`);
      count++;
    }
  }
  flush();
  return out;
}

const baseChains: { name: string; type: "nat" | "filter"; hook: string; priority: number; why: string }[] = [
  { name: "nat_output", type: "nat", hook: "output", priority: NAT_PRIORITY, why: "connections opened by the sandbox's own processes" },
  { name: "nat_prerouting", type: "nat", hook: "prerouting", priority: NAT_PRIORITY, why: "connections forwarded through the sandbox (ingress sandbox)" },
  { name: "filter_output", type: "filter", hook: "output", priority: FILTER_PRIORITY, why: "a VIP nat left alone has no backend: refuse at once" },
  { name: "filter_forward", type: "filter", hook: "forward", priority: FILTER_PRIORITY, why: "the same for forwarded connections" },
];

const natRules = [`ip daddr vmap @${CHAIN_MAP}`, `dnat to ${RANDOM_CHOICE}`];
const filterRules = [
  `ip daddr @${REJECT_SET} meta l4proto tcp reject with tcp reset`,
  `ip daddr @${REJECT_SET} reject with icmp type port-unreachable`,
];

/** The whole table, replaced in one transaction. */
export function renderRuleset(plan: LbPlan): string {
  const objects = [...objectsOf(plan).values()];
  const out: string[] = [
    "# vipmesh load balancing, rendered by apps/agent/src/lb/nftables/render.ts from the sandbox's LbPlan.",
    `# One transaction: our table is replaced whole (the first add lets the delete succeed on a fresh sandbox).`,
    `add table ${T}`,
    `delete table ${T}`,
    `add table ${T}`,
    "",
    "# VIP . slot -> task address: each backend owns a slice of 0-65535 in proportion to its weight",
    `add map ${T} ${BACKEND_MAP} { typeof ip daddr . numgen random mod 65536 : ip daddr; flags interval; }`,
    "# VIPs of services with no ready task",
    `add set ${T} ${REJECT_SET} { type ipv4_addr; }`,
    "# VIPs with a chain of their own: round-robin, client-IP affinity",
    `add map ${T} ${CHAIN_MAP} { type ipv4_addr : verdict; }`,
    "# client . VIP -> the task its last new connection went to, written by packets; each element expires by itself",
    `add map ${T} ${AFFINITY_MAP} { type ipv4_addr . ipv4_addr : ipv4_addr; size ${AFFINITY_SIZE}; flags dynamic, timeout; }`,
    "# VIP . task: where an affinity VIP may send a client it remembers",
    `add set ${T} ${AFFINITY_BACKENDS} { type ipv4_addr . ipv4_addr; }`,
  ];
  for (const c of baseChains) {
    out.push("", `# ${c.why}`);
    out.push(`add chain ${T} ${c.name} { type ${c.type} hook ${c.hook} priority ${c.priority}; policy accept; }`);
    for (const r of c.type === "nat" ? natRules : filterRules) out.push(`add rule ${T} ${c.name} ${r}`);
  }
  for (const t of sharedAffinityTimeouts(plan)) out.push("", ...affinityChainAdd(t));
  const own = objects.filter((o) => o.ownRules !== undefined);
  if (own.length > 0) out.push("", "# round-robin VIPs: a counter needs a chain of its own");
  for (const o of own) out.push(...ownChainAdd(o));
  const chained = objects.filter((o) => o.chain !== undefined);
  out.push(...section("VIPs with a chain of their own", elementStatements("add", CHAIN_MAP, chained.map(chainElementGroup))));
  out.push(...section("VIPs that refuse", elementStatements("add", REJECT_SET, objects.filter((o) => o.rejected).map(rejectGroup))));
  out.push(...section("backends of random VIPs", elementStatements("add", BACKEND_MAP, objects.filter((o) => o.slices.length > 0).map(slicesGroup))));
  out.push(...section("backends of affinity VIPs", elementStatements("add", AFFINITY_BACKENDS, objects.filter((o) => o.affinityBackends.length > 0).map(affinityGroup))));
  return `${out.join("\n")}\n`;
}

const section = (title: string, statements: string[]): string[] => (statements.length === 0 ? [] : ["", `# ${title}`, ...statements]);

const affinityChainAdd = (t: number): string[] => [
  `# random VIPs with client-IP affinity for ${t} s: a remembered task if still a backend, else a new one, remembered`,
  `add chain ${T} ${affinityChainOf(t)}`,
  ...affinityRules(t, RANDOM_CHOICE).map((r) => `add rule ${T} ${affinityChainOf(t)} ${r}`),
];
const sharedChainDelete = (t: number): string[] => [`flush chain ${T} ${affinityChainOf(t)}`, `delete chain ${T} ${affinityChainOf(t)}`];
const ownChainAdd = (o: VipObjects): string[] => [
  `# ${serviceComment(o.svc)}`,
  `add chain ${T} ${o.chain!}`,
  ...o.ownRules!.map((r) => `add rule ${T} ${o.chain!} ${r}`),
];
const ownChainDelete = (o: VipObjects): string[] => [`# ${serviceComment(o.svc)}`, `flush chain ${T} ${o.chain!}`, `delete chain ${T} ${o.chain!}`];
const chainElementGroup = (o: VipObjects) => ({ comment: serviceComment(o.svc), elements: [{ key: o.svc.vip, value: `goto ${o.chain!}` }] });
const rejectGroup = (o: VipObjects) => ({ comment: serviceComment(o.svc), elements: [{ key: o.svc.vip }] });
const slicesGroup = (o: VipObjects) => ({ comment: serviceComment(o.svc), elements: o.slices });
const affinityGroup = (o: VipObjects) => ({ comment: serviceComment(o.svc), elements: o.affinityBackends });

/** The elements of `a` not in `b`. */
const minus = (a: Element[], b: Element[]): Element[] => {
  const there = new Set(b.map(elementText));
  return a.filter((e) => !there.has(elementText(e)));
};

/**
 * What turns the kernel state of `prev` into that of `next` (both canonical:
 * canonicalLbPlan, which lbPlanFor gives), in one
 * transaction: deletes first (an interval must be gone before another takes
 * its slots, a chain's vmap element before the chain), then adds. Only the
 * VIPs that changed appear, and of those only the elements that changed.
 * The affinity map's own elements, written by packets, are left alone. ""
 * when nothing changed.
 */
export function renderDelta(prev: LbPlan, next: LbPlan): string {
  return deltaScript(deltaOf(prev, next).statements);
}

const deltaScript = (statements: string[]): string =>
  statements.length === 0 ? "" : `# vipmesh load balancing: changes since the last sync, one transaction.\n${statements.join("\n")}\n`;

/**
 * Past this many deletes of @be elements in one delta, a full load is
 * cheaper. Measured (bench:nft, 30k services): the interval set finds each
 * element to delete by scanning, ~0.25 µs per element in it, while a full load
 * costs ~12 µs per element: a delta wins below ~48 deletes whatever the size
 * (1% of 30k services losing an endpoint at once: 4.6 s as a delta, 0.8 s
 * loaded whole). A full load forgets the affinity map's clients and restarts
 * rr counters, once.
 */
export const MAX_DELTA_SLICE_DELETES = 48;

/**
 * What the agent loads to bring a sandbox from `prev` (what it last applied;
 * undefined: unknown) to `next`: the delta, or the whole ruleset when nothing
 * is known or the delta would cost more. "" when nothing changed.
 */
export function renderChange(prev: LbPlan | undefined, next: LbPlan): { script: string; full: boolean } {
  if (prev) {
    const d = deltaOf(prev, next);
    if (d.sliceDeletes <= MAX_DELTA_SLICE_DELETES) return { script: deltaScript(d.statements), full: false };
  }
  return { script: renderRuleset(next), full: true };
}

function deltaOf(prev: LbPlan, next: LbPlan): { statements: string[]; sliceDeletes: number } {
  // only the VIPs that changed are rendered: the cost follows the change, not the number of services
  const changed = lbPlanChanges(prev, next);
  const before = objectsOf({ services: changed.flatMap((c) => (c.before ? [c.before] : [])) });
  const after = objectsOf({ services: changed.flatMap((c) => (c.after ? [c.after] : [])) });
  const vips = [...new Set([...before.keys(), ...after.keys()])].sort((a, b) => parseIpv4(a)! - parseIpv4(b)!);

  type Groups = { comment: string; elements: Element[] }[];
  const delChained: Groups = [];
  const delChains: string[] = [];
  const delSlices: Groups = [];
  const delRejects: Groups = [];
  const delAffinity: Groups = [];
  const changedChains: string[] = [];
  const addChains: string[] = [];
  const addChained: Groups = [];
  const addRejects: Groups = [];
  const addSlices: Groups = [];
  const addAffinity: Groups = [];

  for (const vip of vips) {
    const a = before.get(vip);
    const b = after.get(vip);
    const svc = (b ?? a)!.svc;
    const comment = serviceComment(svc);
    // where @vip_chains sends it
    if (a?.chain !== b?.chain) {
      if (a?.chain !== undefined) delChained.push(chainElementGroup(a));
      if (b?.chain !== undefined) addChained.push(chainElementGroup(b));
    }
    // its own chain: gone, new, or its rules replaced
    if (a?.ownRules !== undefined && b?.ownRules === undefined) {
      delChains.push(...ownChainDelete(a));
    } else if (a?.ownRules === undefined && b?.ownRules !== undefined) {
      addChains.push(...ownChainAdd(b));
    } else if (a?.ownRules !== undefined && b?.ownRules !== undefined && a.ownRules.join("\n") !== b.ownRules.join("\n")) {
      changedChains.push(`# ${comment}`, `flush chain ${T} ${b.chain!}`, ...b.ownRules.map((r) => `add rule ${T} ${b.chain!} ${r}`));
    }
    if (a?.rejected && !b?.rejected) delRejects.push({ comment, elements: [{ key: vip }] });
    if (!a?.rejected && b?.rejected) addRejects.push({ comment, elements: [{ key: vip }] });
    for (const [was, is, del, add] of [
      [a?.slices ?? [], b?.slices ?? [], delSlices, addSlices],
      [a?.affinityBackends ?? [], b?.affinityBackends ?? [], delAffinity, addAffinity],
    ] as const) {
      const gone = minus(was, is);
      const come = minus(is, was);
      if (gone.length > 0) del.push({ comment, elements: gone });
      if (come.length > 0) add.push({ comment, elements: come });
    }
  }
  // the shared chains of affinity timeouts, by what uses them in the whole plans
  const had = sharedAffinityTimeouts(prev);
  const has = sharedAffinityTimeouts(next);
  for (const t of had) if (!has.includes(t)) delChains.push(`# no random VIP has affinity for ${t} s any more`, ...sharedChainDelete(t));
  const newShared = has.filter((t) => !had.includes(t)).flatMap(affinityChainAdd);

  const statements = [
    ...elementStatements("delete", CHAIN_MAP, delChained),
    ...delChains,
    ...elementStatements("delete", BACKEND_MAP, delSlices),
    ...elementStatements("delete", REJECT_SET, delRejects),
    ...elementStatements("delete", AFFINITY_BACKENDS, delAffinity),
    ...changedChains,
    ...newShared,
    ...addChains,
    ...elementStatements("add", CHAIN_MAP, addChained),
    ...elementStatements("add", REJECT_SET, addRejects),
    ...elementStatements("add", BACKEND_MAP, addSlices),
    ...elementStatements("add", AFFINITY_BACKENDS, addAffinity),
  ];
  return { statements, sliceDeletes: delSlices.reduce((n, g) => n + g.elements.length, 0) };
}
