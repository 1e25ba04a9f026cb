// The nftables load-balancing ruleset of one task sandbox, from its LbPlan:
// a full `nft -f` script (first sync, resync) and a delta script (every other
// sync) that only adds and deletes elements.
//
// Layout, and why (numbers measured on this project's machines, DESIGN.md,
// 30k services in one namespace, nft 1.0.6):
//
//   kube-proxy's layout, a verdict map jumping to one chain per service, each
//   `dnat to numgen inc mod N map {…}`, took 5 min 21 s to load, 0.22 s to add
//   one service and 29 s to list: kernel cost grows with the number of services.
//   Instead every random-scheduled VIP shares ONE static rule over ONE interval map
//
//       dnat to ip daddr . numgen random mod 65536 map @be
//       map be { typeof ip daddr . numgen random mod 65536 : ip daddr; flags interval }
//
//   where each backend owns a contiguous slice of 0–65535 in proportion to its
//   weight (packages/core slotSlices). That loaded 30k services × 2 endpoints
//   in 0.58 s and adds or replaces one service in ≤ 30 ms: the chains never
//   change, a sync only adds and deletes elements, and one endpoint change
//   rewrites the slices of that one service (a few elements, O(its backends),
//   never O(services)). The lookup is one pipapo lookup per new connection
//   whatever the number of services; the port is left unchanged (swarm's VIP
//   forwards any port, any protocol). Element statements are chunked to 2,000
//   elements: one statement of 60k fails with "No buffer space available".
//
//   Full script: `add table; delete table; add table …` in one file is one
//   transaction, so the table is replaced atomically (the first `add` lets the
//   `delete` succeed on a fresh sandbox). Chosen over `add table; flush table`
//   because flush keeps set and map definitions: a changed map type or flag
//   (a new vipmesh version) would fail or, worse, keep the old one. Only our
//   table is touched; established connections keep their conntrack NAT.
//
//   Hooks: the clients are the sandbox's own processes, whose packets pass
//   `output` (nat at -100: numeric priorities, Debian's nft refuses `dstnat`
//   in some contexts). The same rules also sit in `prerouting` so that a
//   sandbox that forwards (the ingress sandbox) can use this ruleset as is.
//   A VIP whose service has no ready task (or only draining ones) is in
//   @vips_without_backends and refused in filter output/forward at 0, after
//   nat had nothing to DNAT it to: a TCP reset or ICMP port-unreachable, so a
//   client fails at once instead of hanging on an address nobody owns.
//
// Scheduler rr: exact round-robin needs a counter per service, and nftables'
// only counter of that kind is `numgen inc` inside one rule; a counter shared
// by all services (`ip daddr . numgen inc mod 65536 map @be`) is not
// round-robin per service. So an rr VIP gets its own chain with one rule
// `dnat to numgen inc mod W map { … }` (W = sum of weights after dividing by
// their gcd; a weight-w backend gets w consecutive counter values: weighted rr,
// bursty order), reached through one static `ip daddr vmap @rr_vips` lookup.
// Adding or removing an rr VIP is a chain plus one vmap element, a backend
// change flushes and re-adds that one rule (its counter restarts, harmless) —
// no other VIP is touched. The cost is kube-proxy's per service: a chain and a
// rule each, ~10 ms of load per rr service by the measurement above (321 s /
// 30k), so rr is for the services that ask for it, random stays the default.
//
// Client-IP affinity (not implemented yet): a dynamic map
// `affinity { typeof ip saddr . ip daddr : ip daddr; flags dynamic, timeout; }`
// consulted before the numgen rule (`dnat to ip saddr . ip daddr map @affinity`)
// and filled after nat, where the chosen backend is known (filter output at 0:
// `ct status dnat ct original ip daddr @affinity_vips update @affinity
// { ip saddr . ct original ip daddr timeout <t> : ip daddr }`); elements
// expire by themselves, so affinity costs memory per client, not per sync.
//
// Deletes of elements that are not there fail the whole transaction (nft 1.0.6
// has no `destroy`): renderDelta must be given the plan last applied, and a
// failed delta is repaired by a full renderRuleset.

import { type LbPlan, type LbService, backendSlices, parseIpv4 } from "@vipmesh/core";

export const TABLE = "vipmesh";
export const BACKEND_MAP = "be";
export const REJECT_SET = "vips_without_backends";
export const RR_MAP = "rr_vips";
/** One `add element` statement of 60k elements fails with ENOBUFS; 2,000 was measured to work. */
export const MAX_ELEMENTS_PER_STATEMENT = 2000;
export const NAT_PRIORITY = -100;
export const FILTER_PRIORITY = 0;

const T = `ip ${TABLE}`;

export class NftRenderError extends Error {
  override name = "NftRenderError";
}

/** The chain of an rr VIP: a stable name from its address. */
export const rrChainOf = (vip: string): string => `rr_${vip.replaceAll(".", "_")}`;

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
  /** The rule of its rr chain (rr with backends). */
  rrRule?: string;
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

function rrRuleOf(s: LbService): string | undefined {
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
  return `dnat to numgen inc mod ${next} map { ${entries.join(", ")} }`;
}

function objectsOf(plan: LbPlan): Map<string, VipObjects> {
  const out = new Map<string, VipObjects>();
  for (const s of plan.services) {
    checkIp(s.vip, `service ${s.serviceId}`);
    if (out.has(s.vip)) throw new NftRenderError(`VIP ${s.vip} appears twice in the plan`);
    for (const b of s.backends) checkIp(b.ip, `service ${s.serviceId} backend`);
    const o: VipObjects = { svc: s, slices: [], rejected: false };
    if (s.scheduler === "rr") {
      o.rrRule = rrRuleOf(s);
      o.rejected = o.rrRule === undefined;
    } else {
      o.slices = backendSlices(s.backends).map((b) => ({ key: `${s.vip} . ${b.lo}-${b.hi}`, value: b.ip }));
      o.rejected = o.slices.length === 0;
    }
    out.set(s.vip, o);
  }
  return out;
}

const elementText = (e: Element): string => (e.value === undefined ? e.key : `${e.key} : ${e.value}`);

/**
 * `add element` / `delete element` statements, at most 2,000 elements each,
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

const natRules = [`ip daddr vmap @${RR_MAP}`, `dnat to ip daddr . numgen random mod 65536 map @${BACKEND_MAP}`];
const filterRules = [
  `ip daddr @${REJECT_SET} meta l4proto tcp reject with tcp reset`,
  `ip daddr @${REJECT_SET} reject with icmp type port-unreachable`,
];

/** The whole table, replaced in one transaction. */
export function renderRuleset(plan: LbPlan): string {
  const objects = [...objectsOf(plan).values()];
  const out: string[] = [
    "# vipmesh load balancing, rendered by apps/agent/src/dataplane/nftables/render.ts from the sandbox's LbPlan.",
    `# One transaction: our table is replaced whole (the first add lets the delete succeed on a fresh sandbox).`,
    `add table ${T}`,
    `delete table ${T}`,
    `add table ${T}`,
    "",
    "# VIP . slot -> task address: each backend owns a slice of 0-65535 in proportion to its weight",
    `add map ${T} ${BACKEND_MAP} { typeof ip daddr . numgen random mod 65536 : ip daddr; flags interval; }`,
    "# VIPs of services with no ready task",
    `add set ${T} ${REJECT_SET} { type ipv4_addr; }`,
    "# VIPs scheduled round-robin, each to its own chain",
    `add map ${T} ${RR_MAP} { type ipv4_addr : verdict; }`,
  ];
  for (const c of baseChains) {
    out.push("", `# ${c.why}`);
    out.push(`add chain ${T} ${c.name} { type ${c.type} hook ${c.hook} priority ${c.priority}; policy accept; }`);
    for (const r of c.type === "nat" ? natRules : filterRules) out.push(`add rule ${T} ${c.name} ${r}`);
  }
  const rr = objects.filter((o) => o.rrRule !== undefined);
  if (rr.length > 0) out.push("", "# round-robin VIPs: a counter needs a rule of its own");
  for (const o of rr) out.push(...rrChainAdd(o));
  out.push(...section("round-robin VIPs", elementStatements("add", RR_MAP, rr.map(rrElementGroup))));
  out.push(...section("VIPs that refuse", elementStatements("add", REJECT_SET, objects.filter((o) => o.rejected).map(rejectGroup))));
  out.push(...section("backends of random VIPs", elementStatements("add", BACKEND_MAP, objects.filter((o) => o.slices.length > 0).map(slicesGroup))));
  return `${out.join("\n")}\n`;
}

const section = (title: string, statements: string[]): string[] => (statements.length === 0 ? [] : ["", `# ${title}`, ...statements]);

const rrChainAdd = (o: VipObjects): string[] => [
  `# ${serviceComment(o.svc)}`,
  `add chain ${T} ${rrChainOf(o.svc.vip)}`,
  `add rule ${T} ${rrChainOf(o.svc.vip)} ${o.rrRule!}`,
];
const rrChainDelete = (vip: string): string[] => [`flush chain ${T} ${rrChainOf(vip)}`, `delete chain ${T} ${rrChainOf(vip)}`];
const rrElementGroup = (o: VipObjects) => ({ comment: serviceComment(o.svc), elements: [{ key: o.svc.vip, value: `goto ${rrChainOf(o.svc.vip)}` }] });
const rejectGroup = (o: VipObjects) => ({ comment: serviceComment(o.svc), elements: [{ key: o.svc.vip }] });
const slicesGroup = (o: VipObjects) => ({ comment: serviceComment(o.svc), elements: o.slices });

/**
 * What turns the kernel state of `prev` into that of `next`, in one
 * transaction: deletes first (an interval must be gone before another takes
 * its slots), then adds. Only the VIPs that changed appear, and of those only
 * the elements that changed. "" when nothing did.
 */
export function renderDelta(prev: LbPlan, next: LbPlan): string {
  const before = objectsOf(prev);
  const after = objectsOf(next);
  const vips = [...new Set([...before.keys(), ...after.keys()])].sort((a, b) => parseIpv4(a)! - parseIpv4(b)!);

  const delRr: { comment: string; elements: Element[] }[] = [];
  const delChains: string[] = [];
  const delSlices: { comment: string; elements: Element[] }[] = [];
  const delRejects: { comment: string; elements: Element[] }[] = [];
  const changedRr: string[] = [];
  const addChains: string[] = [];
  const addRr: { comment: string; elements: Element[] }[] = [];
  const addRejects: { comment: string; elements: Element[] }[] = [];
  const addSlices: { comment: string; elements: Element[] }[] = [];

  for (const vip of vips) {
    const a = before.get(vip);
    const b = after.get(vip);
    const svc = (b ?? a)!.svc;
    const comment = serviceComment(svc);
    // rr chain: gone, new, or its rule replaced
    if (a?.rrRule !== undefined && b?.rrRule === undefined) {
      delRr.push(rrElementGroup(a));
      delChains.push(`# ${serviceComment(a.svc)}`, ...rrChainDelete(vip));
    } else if (a?.rrRule === undefined && b?.rrRule !== undefined) {
      addChains.push(...rrChainAdd(b));
      addRr.push(rrElementGroup(b));
    } else if (a?.rrRule !== undefined && b?.rrRule !== undefined && a.rrRule !== b.rrRule) {
      changedRr.push(`# ${comment}`, `flush chain ${T} ${rrChainOf(vip)}`, `add rule ${T} ${rrChainOf(vip)} ${b.rrRule}`);
    }
    if (a?.rejected && !b?.rejected) delRejects.push({ comment, elements: [{ key: vip }] });
    if (!a?.rejected && b?.rejected) addRejects.push({ comment, elements: [{ key: vip }] });
    const had = new Set((a?.slices ?? []).map(elementText));
    const has = new Set((b?.slices ?? []).map(elementText));
    const gone = (a?.slices ?? []).filter((e) => !has.has(elementText(e)));
    const come = (b?.slices ?? []).filter((e) => !had.has(elementText(e)));
    if (gone.length > 0) delSlices.push({ comment, elements: gone });
    if (come.length > 0) addSlices.push({ comment, elements: come });
  }

  const statements = [
    ...elementStatements("delete", RR_MAP, delRr),
    ...delChains,
    ...elementStatements("delete", BACKEND_MAP, delSlices),
    ...elementStatements("delete", REJECT_SET, delRejects),
    ...changedRr,
    ...addChains,
    ...elementStatements("add", RR_MAP, addRr),
    ...elementStatements("add", REJECT_SET, addRejects),
    ...elementStatements("add", BACKEND_MAP, addSlices),
  ];
  if (statements.length === 0) return "";
  return `# vipmesh load balancing: changes since the last sync, one transaction.\n${statements.join("\n")}\n`;
}
