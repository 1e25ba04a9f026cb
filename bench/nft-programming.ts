// Benchmark (not a test): what programming the nftables dataplane costs when a
// sandbox already sees many services. It times exactly what the agent does per
// sync (KernelNftables.sync): render a script from the LbPlan — renderChange
// against the plan last applied (a delta, or the whole ruleset when the delta
// would delete more than render.ts's MAX_DELTA_SLICE_DELETES), or
// renderRuleset for a full load — and feed it
// to `ip netns exec NS nft -f -`, in a network namespace of its own; a delta
// the kernel refuses is followed by a full load, as the agent does, and counted.
//
//   npx tsx bench/nft-programming.ts [--quick] [--full] [--alternatives] [--reps 30]    (as root)
//
// On a shared machine run it under `flock /tmp/vipmesh-kernel.lock …` so that no
// other kernel workload runs meanwhile: the figures are wall-clock.
//
// Figures, each beside a baseline from the same run:
//   1. adding one service (a VIP with 2 backends) to a sandbox that has 1k, 10k
//      and 30k services: p50/p99 of the whole agent step, and of its render and
//      nft parts. Baselines: kube-proxy's nftables layout (a verdict map
//      `ip daddr vmap @svc` with `goto` to one chain per service, each
//      `dnat to numgen inc mod N map {…}`; loaded at 1k and 10k, 30k only with
//      --full: it took 5+ minutes, docs/ARCHITECTURE.md) adding the same service its way
//      (a chain, its rule, a vmap element), and a full-ruleset reload (kube-proxy
//      before partial sync): renderRuleset of the whole new plan + nft -f.
//      Beside it, what the agent computes before that step (CPU only): the
//      sandbox's LB plan and DNS records after the delta (SandboxDerivation),
//      beside deriving them from the whole view again, and the target checked
//      on the sum of both p99s: the whole agent step.
//   2. a full load of N services × 2 endpoints, first into an empty namespace
//      and as a resync onto the loaded table (what the agent does after a failed
//      delta); baseline: kube-proxy's layout loaded at 10k.
//   3. one endpoint change (one backend of a random service replaced);
//      baselines: kube-proxy's layout (flush the service's chain, add its rule
//      again) and the full reload of 1.
//   3b. one delta replacing one endpoint of 1% of the services (what a node
//      failure does), against the same baselines.
// Then where the time goes: the floor of a process in the namespace, an nft
// no-op, and the removal of one element of the interval map, loaded by the
// full load vs the same element once a delta has added it back (the pipapo set
// finds an element to remove by scanning its rules from the first, and any
// transaction that deletes makes nft's exit wait for the kernel's deferred
// release, an RCU grace period), and canonicalLbPlan (lbPlanFor's sort), paid
// when the agent derives a sandbox's plan from its whole view, not in the figures.
//
// Kernel check: after every load and every series (outside the timed loops)
// the maps are listed (`nft -j list`) and must hold exactly the elements
// loaded, key and value; the report says where they do not.
//
// --alternatives adds rows for layouts measured as a possible next step, not
// what the agent does (random VIPs with backends only; checked against the
// kernel the same way):
//   split-K   the `be` map split into K = 64, 256, 1024 maps by the VIP's low
//             bits (`ip daddr & 0.0.0.255 vmap { 0.0.0.i : goto be_i, … }` for
//             256, each chain one `dnat … map @be_i`), so that removing an
//             element scans 1/K of them. split-256 is the proposal for cheaper
//             endpoint removals at 30k; measured earlier at 30k, against the
//             single `be` map: one endpoint change ~20 ms p50 vs ~43 ms, a 1%
//             bulk change 0.17 s vs 4.5 s, a full load 0.65 s vs 0.74 s; and
//             1,024 maps add ~3 ms to every nft run.
//   hash      a diagnostic, not a design (it has no weights): the same elements
//             in a hash map without intervals (`ip daddr . numgen random mod 2`),
//             to show which costs belong to the interval (pipapo) set.
// --quick: 1k and 3k services, 10 repetitions (under a minute); by default 1k
// and 10k; --full: also 30k, kube-proxy's layout too (5+ minutes). The figures
// the suite reports also go to bench/results/nft.json. Percentiles are nearest-rank: p99 of
// 30 samples is the slowest. The report goes to stdout, progress to stderr.
//
// Addresses (10/8; nothing leaves the namespace, whose only interface, lo, stays
// down): VIPs 10.128.0.1…, backends 10.0.0.1… (two per service), replacement
// backends for endpoint changes 10.64.0.1….

import { renderChange, renderRuleset } from "@vipmesh/agent";
import {
  SandboxDerivation,
  applyViewDelta,
  backendSlices,
  canonicalLbPlan,
  dnsRecordsFor,
  emptyDelta,
  emptyView,
  formatIpv4,
  type LbPlan,
  type LbService,
  type LbPlanChange,
  lbPlanChanges,
  lbPlanFor,
  type NetworkView,
  parseIpv4,
} from "@vipmesh/core";
import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, release } from "node:os";
import { performance } from "node:perf_hooks";

// ---- options -----------------------------------------------------------------

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const full = argv.includes("--full");
const alternatives = argv.includes("--alternatives");
const reps = argv.includes("--reps") ? Number(argv[argv.indexOf("--reps") + 1]) : quick ? 10 : 100;
if (!Number.isInteger(reps) || reps < 1) throw new Error("--reps takes a positive integer");
/** Sizes of the vipmesh layout; the targets speak of 30k (--full), and are checked on the largest run. */
const SIZES = quick ? [1000, 3000] : full ? [1000, 10_000, 30_000] : [1000, 10_000];
/** kube-proxy's layout at 30k took 5 min 21 s to load (docs/ARCHITECTURE.md, "nftables layout"): only with --full. */
const KP_SIZES = quick ? [1000, 3000] : full ? [1000, 10_000, 30_000] : [1000, 10_000];
/** How many maps the split-K alternatives spread `be` over. */
const SPLITS = [64, 256, 1024];
/**
 * Elements per `add element` statement in what the alternatives and the
 * baseline load: nft 1.0.6 stores the 1,366th element of a statement into an
 * interval map under another key (render.ts chunks its statements the same way).
 */
const STATEMENT_SIZE = 1000;
/** Untimed operations before each timed series, so that it does not time JIT warm-up. */
const WARMUP = 3;
/** Figure 3b: one delta replacing an endpoint of this share of the services (a node fails), this many times. */
const BULK_SHARE = 0.01;
const BULK_REPS = quick ? 2 : 5;

// From the issue.
const TARGET_ADD_P99_MS = 20;
const TARGET_ADD_GROWTH = 1.5;
const TARGET_RESYNC_MS = 10_000;

const NS = `vmbench-nft-${randomBytes(3).toString("hex")}`;

// ---- the namespace and the commands run in it ----------------------------------

function deleteNamespace(): void {
  try {
    execFileSync("ip", ["netns", "del", NS], { stdio: "ignore" });
  } catch {
    // not there (yet, or any more)
  }
}

process.on("SIGINT", () => {
  deleteNamespace();
  process.stderr.write(`\ninterrupted; namespace ${NS} deleted\n`);
  process.exit(130);
});
process.on("SIGTERM", () => {
  deleteNamespace();
  process.exit(143);
});

/**
 * `ip netns exec NS <command…>` with `input` on stdin, spawned as the agent's
 * run() spawns it (apps/agent/src/exec/run.ts): its stdout and the wall-clock
 * milliseconds from spawn to exit. A non-zero exit throws with stderr.
 */
function inNamespace(command: string[], input = ""): Promise<{ ms: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn("ip", ["netns", "exec", NS, ...command], { stdio: ["pipe", "pipe", "pipe"], env: { ...process.env, LC_ALL: "C" } });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on("data", (b: Buffer) => out.push(b));
    child.stderr.on("data", (b: Buffer) => err.push(b));
    child.on("error", reject);
    child.on("close", (code) => {
      const ms = performance.now() - t0;
      if (code !== 0) return reject(new Error(`${command.join(" ")} in ${NS}: exit ${code}: ${Buffer.concat(err).toString().trim().slice(0, 2000)}`));
      resolve({ ms, stdout: Buffer.concat(out).toString() });
    });
    child.stdin.on("error", () => {});
    child.stdin.end(input);
  });
}

/** What KernelNftables.load does: the milliseconds of `nft -f -` fed with `script`. */
const nftLoad = async (script: string): Promise<number> => (await inNamespace(["nft", "-f", "-"], script)).ms;

const dropTable = (table: string) => nftLoad(`add table ${table}\ndelete table ${table}\n`);

// ---- plans -------------------------------------------------------------------

const VIP_BASE = parseIpv4("10.128.0.0")!;
const BACKEND_BASE = parseIpv4("10.0.0.0")!;
const SPARE_BASE = parseIpv4("10.64.0.0")!;

/** Service i: VIP 10.128.0.0 + 1 + i, backends 10.0.0.0 + 1 + 2i and + 2 + 2i, weight 1 each. */
const service = (i: number): LbService => ({
  serviceId: `bench${i}`,
  name: `svc-${i}`,
  vip: formatIpv4(VIP_BASE + 1 + i),
  scheduler: "random",
  backends: [0, 1].map((j) => ({ ip: formatIpv4(BACKEND_BASE + 1 + 2 * i + j), weight: 1 })),
});

/** Services 0 … n-1, canonical (by VIP) as lbPlanFor returns them. */
const planOf = (n: number): LbPlan => ({ services: Array.from({ length: n }, (_, i) => service(i)) });

let nextService = 0; // an added service is always new to the kernel
/** `plan` plus a new service: its VIP sorts last, so the plan stays canonical. */
const withNewService = (plan: LbPlan): LbPlan => ({ services: [...plan.services, service(nextService++)] });

let spare = 0;
/** `s` with its second backend replaced by a fresh address (10.64/10 sorts after 10.0/10: the order holds). */
const withSecondBackendReplaced = (s: LbService): LbService => ({
  ...s,
  backends: [s.backends[0]!, { ip: formatIpv4(SPARE_BASE + 1 + spare++), weight: 1 }],
});

/** `plan` with one backend of a random service replaced. */
function withEndpointChanged(plan: LbPlan): LbPlan {
  const k = Math.floor(Math.random() * plan.services.length);
  const services = [...plan.services];
  services[k] = withSecondBackendReplaced(services[k]!);
  return { services };
}

/** `plan` with one backend of every 1/BULK_SHARE-th service replaced, from a random offset: what a node failure does. */
function withManyEndpointsChanged(plan: LbPlan): LbPlan {
  const stride = Math.round(1 / BULK_SHARE);
  const services = [...plan.services];
  for (let i = Math.floor(Math.random() * stride); i < services.length; i += stride) services[i] = withSecondBackendReplaced(services[i]!);
  return { services };
}

// ---- layouts -------------------------------------------------------------------

/** A way to lay the plan out in nftables: what a full load and a delta write, and what the kernel must then hold. */
interface Layout {
  name: string;
  table: string;
  full: (plan: LbPlan) => string;
  delta: (prev: LbPlan, next: LbPlan) => string;
  /** The maps holding the plan's elements… */
  maps: string[];
  /** … and those elements, as `key : value` the way `nft list` prints them. */
  expected: (plan: LbPlan) => string[];
}

/** The slices of a random VIP as render.ts writes them: `VIP . lo-hi : backend`. */
const sliceElements = (s: LbService): { key: string; text: string }[] =>
  backendSlices(s.backends).map((b) => ({ key: `${s.vip} . ${b.lo}-${b.hi}`, text: `${s.vip} . ${b.lo}-${b.hi} : ${b.ip}` }));

const allSlices = (plan: LbPlan) => plan.services.flatMap((s) => sliceElements(s).map((e) => e.text));

/** vipmesh as render.ts lays it out. */
const OURS: Layout = {
  name: "vipmesh: renderChange + nft -f",
  table: "ip vipmesh",
  full: renderRuleset,
  // as the agent: the delta, or the whole ruleset when the delta would delete too much
  delta: (prev, next) => renderChange(prev, next).script,
  maps: ["be"],
  expected: allSlices,
};

/** `add element` (or, keys only, `delete element`) statements of at most STATEMENT_SIZE elements. */
function elementStatements(verb: "add" | "delete", table: string, map: string, elements: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < elements.length; i += STATEMENT_SIZE) {
    out.push(`${verb} element ${table} ${map} {\n\t${elements.slice(i, i + STATEMENT_SIZE).join(",\n\t")}\n}`);
  }
  return out;
}

/**
 * Element deltas of the changed services, per map (`mapOf` says which): all
 * deletes, then all adds, as render.ts orders them.
 */
function elementDelta(table: string, cs: LbPlanChange[], mapOf: (vip: string) => string, elementsOf: (s: LbService) => { key: string; text: string }[]): string {
  const dels = new Map<string, string[]>();
  const adds = new Map<string, string[]>();
  const push = (m: Map<string, string[]>, k: string, v: string) => (m.get(k) ?? m.set(k, []).get(k)!).push(v);
  for (const c of cs) {
    const map = mapOf((c.before ?? c.after)!.vip);
    const old = c.before ? elementsOf(c.before) : [];
    const neu = c.after ? elementsOf(c.after) : [];
    const had = new Set(old.map((e) => e.text));
    const has = new Set(neu.map((e) => e.text));
    for (const e of old) if (!has.has(e.text)) push(dels, map, e.key);
    for (const e of neu) if (!had.has(e.text)) push(adds, map, e.text);
  }
  const out = [...dels].flatMap(([m, es]) => elementStatements("delete", table, m, es));
  out.push(...[...adds].flatMap(([m, es]) => elementStatements("add", table, m, es)));
  return out.length === 0 ? "" : `${out.join("\n")}\n`;
}

function onlyRandomWithBackends(plan: LbPlan): void {
  for (const s of plan.services) {
    if (s.scheduler !== "random" || s.backends.length === 0) throw new Error("the alternatives render random VIPs with backends only");
  }
}

/** The nat base chains of an alternative, both sending every packet through `rule`. */
const natChains = (table: string, rule: string): string[] =>
  ["output", "prerouting"].flatMap((hook) => [
    `add chain ${table} nat_${hook} { type nat hook ${hook} priority -100; policy accept; }`,
    `add rule ${table} nat_${hook} ${rule}`,
  ]);

/**
 * Alternative split-K: `be` split into K interval maps by the VIP's low bits
 * (K a power of two); sequentially allocated VIPs spread evenly. The rest of
 * render.ts's table (rr VIPs, VIPs without backends) is left out: it does not
 * change what adding or replacing a random VIP's elements costs.
 */
function splitLayout(k: number): Layout {
  const table = "ip vipmesh";
  const mapOf = (vip: string) => `be_${parseIpv4(vip)! & (k - 1)}`;
  const maps = Array.from({ length: k }, (_, i) => `be_${i}`);
  const dispatch = `ip daddr & ${formatIpv4(k - 1)} vmap { ${maps.map((m, i) => `${formatIpv4(i)} : goto ${m}`).join(", ")} }`;
  return {
    name: `alternative split-${k}: be in ${k} maps by VIP`,
    table,
    maps,
    expected: allSlices,
    full(plan) {
      onlyRandomWithBackends(plan);
      const per = new Map<string, string[]>(maps.map((m) => [m, []]));
      for (const s of plan.services) per.get(mapOf(s.vip))!.push(...sliceElements(s).map((e) => e.text));
      return [
        `add table ${table}`,
        `delete table ${table}`,
        `add table ${table}`,
        ...maps.flatMap((m) => [
          `add map ${table} ${m} { typeof ip daddr . numgen random mod 65536 : ip daddr; flags interval; }`,
          `add chain ${table} ${m}`,
          `add rule ${table} ${m} dnat to ip daddr . numgen random mod 65536 map @${m}`,
        ]),
        ...natChains(table, dispatch),
        ...maps.flatMap((m) => elementStatements("add", table, m, per.get(m)!)),
        "",
      ].join("\n");
    },
    delta(prev, next) {
      onlyRandomWithBackends(next);
      return elementDelta(table, lbPlanChanges(prev, next), mapOf, sliceElements);
    },
  };
}

/**
 * hash (a diagnostic): the same number of elements in a map without intervals,
 * `VIP . slot` with slot = numgen random mod 2 — only equal weights of exactly
 * two backends fit, which is why it is no design.
 */
const HASH: Layout = (() => {
  const table = "ip vipmesh";
  const slots = (s: LbService) => s.backends.map((b, i) => ({ key: `${s.vip} . ${i}`, text: `${s.vip} . ${i} : ${b.ip}` }));
  return {
    name: "alternative hash (diagnostic): no intervals",
    table,
    maps: ["be"],
    expected: (plan) => plan.services.flatMap((s) => slots(s).map((e) => e.text)),
    full(plan) {
      onlyRandomWithBackends(plan);
      return [
        `add table ${table}`,
        `delete table ${table}`,
        `add table ${table}`,
        `add map ${table} be { typeof ip daddr . numgen random mod 2 : ip daddr; }`,
        ...natChains(table, "dnat to ip daddr . numgen random mod 2 map @be"),
        ...elementStatements("add", table, "be", plan.services.flatMap((s) => slots(s).map((e) => e.text))),
        "",
      ].join("\n");
    },
    delta: (prev, next) => elementDelta(table, lbPlanChanges(prev, next), () => "be", slots),
  };
})();

// kube-proxy's layout (the baseline), as its nftables mode lays it out reduced
// to what a VIP needs: one verdict map from VIP to a chain per service, each
// chain one numgen rule. (kube-proxy keys the map by address . protocol . port
// and reaches endpoints through a chain each; the chain per service is what
// makes it cost, docs/ARCHITECTURE.md.) Its delta is its partial sync: only the services
// that changed, found by the same merge walk as renderDelta's.
const KUBE_PROXY: Layout = (() => {
  const table = "ip kubeproxy";
  const chain = (s: LbService) => `svc_${s.vip.replaceAll(".", "_")}`;
  const rule = (s: LbService) => `dnat to numgen inc mod ${s.backends.length} map { ${s.backends.map((b, i) => `${i} : ${b.ip}`).join(", ")} }`;
  const chainLines = (s: LbService) => [`add chain ${table} ${chain(s)}`, `add rule ${table} ${chain(s)} ${rule(s)}`];
  const vmapElements = (services: LbService[]) => services.map((s) => `${s.vip} : goto ${chain(s)}`);
  return {
    name: "kube-proxy layout",
    table,
    maps: ["svc"],
    expected: (plan) => vmapElements(plan.services),
    full: (plan) =>
      [
        `add table ${table}`,
        `delete table ${table}`,
        `add table ${table}`,
        `add map ${table} svc { type ipv4_addr : verdict; }`,
        `add chain ${table} nat_output { type nat hook output priority -100; policy accept; }`,
        `add rule ${table} nat_output ip daddr vmap @svc`,
        ...plan.services.flatMap(chainLines),
        ...elementStatements("add", table, "svc", vmapElements(plan.services)),
        "",
      ].join("\n"),
    delta(prev, next) {
      const out: string[] = [];
      for (const { before: a, after: b } of lbPlanChanges(prev, next)) {
        if (a && b) out.push(`flush chain ${table} ${chain(b)}`, `add rule ${table} ${chain(b)} ${rule(b)}`);
        else if (b) out.push(...chainLines(b), ...elementStatements("add", table, "svc", vmapElements([b])));
        else if (a) out.push(`delete element ${table} svc { ${a.vip} }`, `flush chain ${table} ${chain(a)}`, `delete chain ${table} ${chain(a)}`);
      }
      return out.length === 0 ? "" : `${out.join("\n")}\n`;
    },
  };
})();

const ALTERNATIVES: Layout[] = alternatives ? [...SPLITS.map(splitLayout), HASH] : [];

// ---- the kernel check ------------------------------------------------------------

type NftJson = string | number | { concat?: NftJson[]; range?: [NftJson, NftJson]; prefix?: { addr: string; len: number }; goto?: { target: string }; jump?: { target: string } };

/** An element key or value of `nft -j list` as `nft list` prints it. */
function jsonText(x: NftJson): string {
  if (typeof x !== "object") return String(x);
  if (x.concat) return x.concat.map(jsonText).join(" . ");
  if (x.range) return `${jsonText(x.range[0])}-${jsonText(x.range[1])}`;
  if (x.prefix) return `${x.prefix.addr}/${x.prefix.len}`;
  if (x.goto) return `goto ${x.goto.target}`;
  if (x.jump) return `jump ${x.jump.target}`;
  return JSON.stringify(x);
}

/** What the kernel holds in a layout's maps; never inside a timed loop. */
async function heldElements(layout: Layout): Promise<string[]> {
  const [family, table] = layout.table.split(" ") as [string, string];
  const what = layout.maps.length === 1 ? ["map", family, table, layout.maps[0]!] : ["table", family, table];
  const { stdout } = await inNamespace(["nft", "-j", "list", ...what]);
  const doc = JSON.parse(stdout) as { nftables: { map?: { name: string; elem?: [NftJson, NftJson][] } }[] };
  const wanted = new Set(layout.maps);
  return doc.nftables.flatMap((o) => (o.map && wanted.has(o.map.name) ? (o.map.elem ?? []).map(([k, v]) => `${jsonText(k)} : ${jsonText(v)}`) : []));
}

/** A kernel check: the elements the kernel holds under a key (or with a value) other than loaded, each beside what was loaded for that VIP. */
interface Check {
  when: string;
  loaded: number;
  wrong: { held: string; loaded: string[] }[];
}

/** Lists the layout's maps and compares them with the plan; throws when elements are missing or extra, records those held wrong. */
async function check(layout: Layout, plan: LbPlan, when: string, into: Check[]): Promise<void> {
  const want = layout.expected(plan);
  const held = await heldElements(layout);
  if (held.length !== want.length) throw new Error(`${layout.table}: the kernel holds ${held.length} elements, ${want.length} were loaded (${when})`);
  const wantSet = new Set(want);
  const heldSet = new Set(held);
  const vipOf = (e: string) => e.split(" ")[0]!;
  const wrong = held.filter((e) => !wantSet.has(e)).map((e) => ({ held: e, loaded: want.filter((w) => vipOf(w) === vipOf(e) && !heldSet.has(w)) }));
  into.push({ when, loaded: want.length, wrong });
}

/** Where element `text` stands in its `add element` statement of `script` (1-based), or 0. */
function positionInStatement(script: string, text: string): number {
  const at = script.indexOf(`\t${text}`);
  if (at < 0) return 0;
  const start = script.lastIndexOf("add element", at);
  return script.slice(start, at + 1).split("\n").filter((l) => l.startsWith("\t") && !l.startsWith("\t#")).length;
}

// ---- measuring -----------------------------------------------------------------

interface Sample {
  total: number;
  render: number;
  nft: number;
  /** The delta failed and a full load followed, as in KernelNftables.sync. */
  fellBack?: string;
}

const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
const p50 = (xs: Sample[], k: "total" | "render" | "nft" = "total") => pct(xs.map((s) => s[k]), 50);
const p99 = (xs: Sample[], k: "total" | "render" | "nft" = "total") => pct(xs.map((s) => s[k]), 99);

/** One agent step: render (timed), nft -f of it (timed); if the kernel refuses it and there is a `fallback`, that full load too. */
async function step(render: () => string, fallback?: () => string): Promise<Sample> {
  const t0 = performance.now();
  const script = render();
  const t1 = performance.now();
  if (script === "") throw new Error("nothing to load: the change was lost");
  let renderMs = t1 - t0;
  try {
    const nft = await nftLoad(script);
    return { render: renderMs, nft, total: renderMs + nft };
  } catch (err) {
    if (!fallback) throw err;
    const failed = performance.now() - t1;
    const t2 = performance.now();
    const fullScript = fallback();
    renderMs += performance.now() - t2;
    const nft = failed + (await nftLoad(fullScript));
    const why = (err as Error).message.match(/Error: [^\n]*/)?.[0] ?? (err as Error).message;
    return { render: renderMs, nft, total: renderMs + nft, fellBack: why };
  }
}

const isTty = process.stderr.isTTY;
/** A progress line on stderr: rewritten in place on a terminal, one line per phase otherwise. */
function progress(text: string, i?: number, n?: number): void {
  if (i !== undefined && !isTty && i > 0) return;
  const line = i === undefined ? text : `${text} ${i + 1}/${n}`;
  process.stderr.write(isTty ? `\r\x1b[K${line}` : `${line}\n`);
}

interface Run {
  layout: Layout;
  n: number;
  firstLoad: Sample;
  resync?: Sample;
  add: Sample[];
  change: Sample[];
  /** One delta replacing an endpoint of BULK_SHARE of the services. */
  bulk: Sample[];
  /** Adding one service by a full reload (ours only). */
  reload?: Sample[];
  checks: Check[];
  /** The first full script, to say where wrongly held elements stood in it. */
  firstScript: string;
}

const k = (n: number) => (n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : `${n}`);

/** Loads n services in `layout`, then adds services one by one, changes endpoints one by one, then many at once. */
async function measure(layout: Layout, n: number, o: { resync?: boolean; reload?: boolean } = {}): Promise<Run> {
  const tag = `[${layout.name.split(":")[0]} ${k(n)}]`;
  const checks: Check[] = [];
  for (const t of ["ip vipmesh", "ip kubeproxy"]) await dropTable(t);
  let plan = planOf(n);
  nextService = n;
  progress(`${tag} full load${layout === KUBE_PROXY && n >= 10_000 ? " (takes a while)" : ""}`);
  const firstScript = layout.full(plan);
  const firstLoad = await step(() => layout.full(plan));
  await check(layout, plan, "first load", checks);
  let resync: Sample | undefined;
  if (o.resync) {
    progress(`${tag} resync`);
    resync = await step(() => layout.full(plan));
    await check(layout, plan, "resync", checks);
  }

  /** `warmup` untimed then `count` timed steps; `move` changes the plan, the layout renders the change. */
  const series = async (what: string, move: (p: LbPlan) => LbPlan, render: (prev: LbPlan, next: LbPlan) => string, count = reps, warmup = WARMUP) => {
    const samples: Sample[] = [];
    for (let r = 0; r < warmup + count; r++) {
      progress(`${tag} ${what}`, r, warmup + count);
      const next = move(plan);
      const prev = plan;
      const s = await step(
        () => render(prev, next),
        () => layout.full(next),
      );
      if (r >= warmup) samples.push(s);
      plan = next;
    }
    await check(layout, plan, what, checks);
    return samples;
  };
  const add = await series("add one service", withNewService, layout.delta);
  const change = await series("endpoint change", withEndpointChanged, layout.delta);
  const bulk = await series(`${BULK_SHARE * 100}% of endpoints changed at once`, withManyEndpointsChanged, layout.delta, BULK_REPS, 1);
  const reload = o.reload ? await series("add one service by a full reload", withNewService, (_prev, next) => layout.full(next)) : undefined;
  return { layout, n, firstLoad, resync, add, change, bulk, reload, checks, firstScript };
}

/** The floor under every nft figure, and what one removal from `be` costs. */
interface Floor {
  n: number;
  nsTrue: Sample[];
  noop: Sample[];
  /** An element that came with the full load. */
  removeLoaded: Sample[];
  /** The same element once a delta has added it back. */
  removeReadded: Sample[];
  /** canonicalLbPlan of the plan, given in reverse, p50: lbPlanFor's sort, paid per sync before renderDelta (not in the figures). */
  canonicalMs: number;
}

async function floor(n: number): Promise<Floor> {
  const tag = `[floor ${k(n)}]`;
  const plan = planOf(n);
  await nftLoad(renderRuleset(plan)); // fresh: elements in the order of the plan
  const checks: Check[] = [];
  await check(OURS, plan, "floor", checks);
  const heldWrong = new Set(checks[0]!.wrong.map((w) => w.held.split(" ")[0]!)); // deleting one of those fails: not timed here
  const nsTrue: Sample[] = [];
  const noop: Sample[] = [];
  const removeLoaded: Sample[] = [];
  const removeReadded: Sample[] = [];
  // an element removed (timed) and put back (untimed), as a delta would
  const removal = async (i: number): Promise<Sample> => {
    const e = sliceElements(plan.services[i]!)[1]!;
    const sample = await step(() => `delete element ip vipmesh be { ${e.key} }\n`);
    await nftLoad(`add element ip vipmesh be { ${e.text} }\n`);
    return sample;
  };
  for (let i = 0; i < WARMUP + reps; i++) {
    progress(tag, i, WARMUP + reps);
    const t = (await inNamespace(["true"])).ms;
    const a = await step(() => "add table ip vipmesh\n");
    let svc = Math.floor(((i + 0.5) / (WARMUP + reps)) * n); // spread over the plan
    while (heldWrong.has(plan.services[svc]!.vip)) svc = (svc + 1) % n;
    const loaded = await removal(svc);
    const readded = await removal(svc);
    if (i < WARMUP) continue;
    nsTrue.push({ total: t, render: 0, nft: t });
    noop.push(a);
    removeLoaded.push(loaded);
    removeReadded.push(readded);
  }
  const reversed = { services: [...plan.services].reverse() };
  const sortMs: number[] = [];
  for (let i = 0; i < WARMUP + reps; i++) {
    const t0 = performance.now();
    const sorted = canonicalLbPlan(reversed);
    if (i >= WARMUP) sortMs.push(performance.now() - t0);
    if (i === 0 && sorted.services.some((x, j) => x.vip !== plan.services[j]!.vip)) throw new Error("canonicalLbPlan sorted into another order");
  }
  return { n, nsTrue, noop, removeLoaded, removeReadded, canonicalMs: pct(sortMs, 50) };
}

// ---- the agent's derivation ----------------------------------------------------------

interface Derivation {
  n: number;
  /** SandboxDerivation.apply of a delta adding one service (a VIP and 2 ready endpoints). */
  apply: number[];
  /** What the agent did before: lbPlanFor + dnsRecordsFor of the whole view. */
  whole: number[];
}

/**
 * What the agent computes before the dataplane step: the sandbox's LB plan and
 * DNS records from its view. CPU only, no kernel. The view: N services on one
 * network, a VIP and 2 ready endpoints each, as the rows above.
 */
function derivation(n: number): Derivation {
  const view: NetworkView = emptyView();
  view.networks.set("net", { id: "net", name: "net", subnet: "10.0.0.0/8", gateway: "10.0.0.1", vni: 4096, encrypted: false, ingress: false });
  const service = (i: number) => {
    const id = `svc${i}`;
    return {
      svc: { id, name: id, endpointMode: "vip", ports: [], virtualIps: [{ networkId: "net", addr: `${formatIpv4(VIP_BASE + i)}/8` }], lbScheduler: "" },
      endpoints: [0, 1].map((k) => ({
        key: `${id}-t${k}/net`,
        taskId: `${id}-t${k}`,
        serviceId: id,
        networkId: "net",
        addr: `${formatIpv4(BACKEND_BASE + 2 * i + k)}/8`,
        mac: "",
        nodeId: "n2",
        nodeAddr: "192.168.0.2",
        ready: true,
        weight: 1,
      })),
    };
  };
  for (let i = 0; i < n; i++) {
    const { svc, endpoints } = service(i);
    view.services.set(svc.id, svc);
    for (const e of endpoints) view.endpoints.set(e.key, e);
  }
  const nets = new Set(["net"]);
  const d = new SandboxDerivation(view, nets);
  const apply: number[] = [];
  for (let r = 0; r < WARMUP + reps; r++) {
    const { svc, endpoints } = service(n + r);
    const delta = { ...emptyDelta(), services: [svc], endpoints };
    const t0 = performance.now();
    applyViewDelta(view, delta);
    d.apply(view, delta);
    if (r >= WARMUP) apply.push(performance.now() - t0);
  }
  const whole: number[] = [];
  for (let r = 0; r < Math.min(reps, 5); r++) {
    const t0 = performance.now();
    lbPlanFor(view, nets);
    dnsRecordsFor(view, nets);
    whole.push(performance.now() - t0);
  }
  return { n, apply, whole };
}

// ---- the report ------------------------------------------------------------------

const ms = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(1)).padStart(6);
const sec = (x: number) => `${(x / 1000).toFixed(2)} s`;
const ratio = (x: number, base: number) => `${(x / base).toFixed(2)}×`;
const verdict = (ok: boolean) => (ok ? "met" : "MISSED");

const HEAD = `${"".padEnd(52)}total p50    p99 │ render p50    p99 │ nft p50    p99 │ p99 ÷ vipmesh's`;
function row(label: string, xs: Sample[], vs?: Sample[]): string {
  const two = (key: "total" | "render" | "nft") => `${ms(p50(xs, key))} ${ms(p99(xs, key))}`;
  const fell = xs.filter((x) => x.fellBack).length;
  const line = `     ${label.padEnd(50)} ${two("total")} │     ${two("render")} │  ${two("nft")} │ ${vs ? ratio(p99(xs), p99(vs)).padStart(8) : "".padStart(8)}`;
  return fell === 0 ? line : `${line}  (${fell} of ${xs.length}: delta refused, full load)`;
}
const loadText = (x: Sample) => `${sec(x.total)} (render ${sec(x.render)}, nft ${sec(x.nft)})`;

function report(ours: Run[], kps: Run[], alts: Run[], floors: Floor[], derived: Derivation[]): void {
  const nftVersion = execFileSync("nft", ["--version"]).toString().trim();
  const find = (runs: Run[], n: number) => runs.find((x) => x.n === n);
  console.log(`vipmesh nftables programming benchmark — ${new Date().toISOString()}${quick ? " (--quick)" : ""}${alternatives ? " (--alternatives)" : ""}`);
  console.log(`machine: ${availableParallelism()} cores (${cpus()[0]?.model ?? "?"}), kernel ${release()}, ${nftVersion}, node ${process.version}`);
  console.log(`namespace ${NS}; ${reps} timed repetitions per row after ${WARMUP} untimed (p99: nearest rank${reps < 100 ? `, of ${reps} the slowest` : ""}); milliseconds, wall-clock`);
  console.log("a step = render in this process + `ip netns exec NS nft -f -` from spawn to exit, as KernelNftables.sync does");

  console.log(`\n1. Add one service (a VIP with 2 backends) to a sandbox that has N services`);
  console.log(HEAD);
  for (const o of ours) {
    console.log(`   ${k(o.n)} services`);
    console.log(row(o.layout.name, o.add));
    const kp = find(kps, o.n);
    if (kp) console.log(row("kube-proxy layout: chain + rule + vmap element", kp.add, o.add));
    else console.log(`     ${"kube-proxy layout".padEnd(50)} not loaded at this size (5+ min, docs/ARCHITECTURE.md; --full loads it)`);
    console.log(row("full reload: renderRuleset(next plan) + nft -f", o.reload!, o.add));
    for (const a of alts.filter((x) => x.n === o.n)) console.log(row(a.layout.name, a.add, o.add));
  }
  const small = ours[0]!;
  const big = ours.at(-1)!;
  const addBig = p99(big.add);
  const addSmall = p99(small.add);
  console.log(
    `   target: p99 at ${k(big.n)} ${addBig.toFixed(1)} ms ≤ ${TARGET_ADD_P99_MS} ms — ${verdict(addBig <= TARGET_ADD_P99_MS)}; ` +
      `${ratio(addBig, addSmall)} the ${k(small.n)} figure (${addSmall.toFixed(1)} ms) ≤ ${TARGET_ADD_GROWTH}× — ${verdict(addBig <= TARGET_ADD_GROWTH * addSmall)}`,
  );
  console.log(`   before that step, the agent derives the sandbox's LB plan and DNS records from its view (CPU only):`);
  for (const dv of derived) {
    console.log(
      `     ${k(dv.n).padEnd(4)} SandboxDerivation.apply of the delta p50 ${ms(pct(dv.apply, 50))} p99 ${ms(pct(dv.apply, 99))} ms   ` +
        `baseline, the whole view again (lbPlanFor + dnsRecordsFor): p50 ${ms(pct(dv.whole, 50))} ms`,
    );
  }
  const end = (o: Run) => p99(o.add) + pct(derived.find((dv) => dv.n === o.n)!.apply, 99);
  console.log(
    `   target, whole agent step (p99 of the derivation + p99 of the step): ${end(big).toFixed(1)} ms at ${k(big.n)} ≤ ${TARGET_ADD_P99_MS} ms — ` +
      `${verdict(end(big) <= TARGET_ADD_P99_MS)}; ${ratio(end(big), end(small))} the ${k(small.n)} figure (${end(small).toFixed(1)} ms) ≤ ${TARGET_ADD_GROWTH}× — ${verdict(end(big) <= TARGET_ADD_GROWTH * end(small))}`,
  );

  console.log(`\n2. Full load of N services × 2 endpoints: render + nft -f, first into the empty namespace, then as a resync onto it`);
  for (const o of ours) console.log(`     vipmesh ${k(o.n).padEnd(4)} first load ${loadText(o.firstLoad)}   resync ${loadText(o.resync!)}`);
  for (const kp of kps) console.log(`     kube-proxy layout ${k(kp.n).padEnd(4)} first load ${loadText(kp.firstLoad)}`);
  for (const a of alts.filter((x) => x.n === big.n)) console.log(`     ${a.layout.name.split(":")[0]} ${k(a.n)} first load ${loadText(a.firstLoad)}`);
  console.log(`   target: resync at ${k(big.n)} ${sec(big.resync!.total)} ≤ ${sec(TARGET_RESYNC_MS)} — ${verdict(big.resync!.total <= TARGET_RESYNC_MS)}`);
  const kpBig = kps.at(-1);
  if (kpBig) {
    console.log(
      `   baseline: kube-proxy's layout at ${k(kpBig.n)} took ${ratio(kpBig.firstLoad.total, big.resync!.total)} vipmesh's resync at ${k(big.n)}` +
        (kpBig.n < big.n ? ` (docs/ARCHITECTURE.md: at ${k(big.n)} it took 5 min 21 s; the issue quotes ~16 min for kube-proxy)` : ""),
    );
  }

  const changeTable = (pick: (r: Run) => Sample[], kpLabel: string, count: (n: number) => string) => {
    console.log(HEAD);
    for (const o of ours) {
      console.log(`   ${k(o.n)} services${count(o.n)}`);
      console.log(row(o.layout.name, pick(o)));
      const kp = find(kps, o.n);
      if (kp) console.log(row(kpLabel, pick(kp), pick(o)));
      console.log(row("full reload (the same work as in 1)", o.reload!, pick(o)));
      for (const a of alts.filter((x) => x.n === o.n)) console.log(row(a.layout.name, pick(a), pick(o)));
    }
  };
  console.log(`\n3. One endpoint change (one backend of a random service replaced)`);
  changeTable((r) => r.change, "kube-proxy layout: flush chain + add rule", () => "");
  console.log(`\n3b. ${BULK_SHARE * 100}% of the services get one endpoint replaced, in one delta (a node fails); ${BULK_REPS} repetitions after 1 untimed`);
  changeTable((r) => r.bulk, "kube-proxy layout: flush chain + add rule each", (n) => ` (${Math.round(n * BULK_SHARE)} endpoints)`);

  console.log(`\nWhere the time goes`);
  console.log(HEAD);
  for (const f of floors) {
    console.log(`   ${k(f.n)} services (${2 * f.n} elements in be)`);
    console.log(row("`ip netns exec NS true`: the process floor", f.nsTrue));
    console.log(row("nft -f no-op (`add table` of our table)", f.noop));
    console.log(row("delete 1 element of be that the full load added", f.removeLoaded));
    console.log(row("delete it again once a delta added it back", f.removeReadded));
    console.log(`     canonicalLbPlan of the plan, given in reverse (paid when the agent derives a sandbox's plan from its whole view: its first sync, a network change; not in the figures): p50 ${ms(f.canonicalMs).trim()} ms`);
  }

  console.log(`\nKernel check (the maps listed after every load and series, compared with what was loaded, key and value)`);
  const all = [...ours, ...alts, ...kps];
  let clean = 0;
  for (const r of all) {
    const bad = r.checks.filter((c) => c.wrong.length > 0);
    if (bad.length === 0) {
      clean++;
      continue;
    }
    const worst = bad.reduce((a, b) => (b.wrong.length > a.wrong.length ? b : a));
    const ex = worst.wrong[0]!;
    const positions = [...new Set(bad[0]!.wrong.flatMap((w) => w.loaded.map((l) => positionInStatement(r.firstScript, l))))];
    console.log(
      `     ${r.layout.name.split(":")[0]} ${k(r.n)}: after ${bad.map((c) => c.when).join(", ")}: ${worst.wrong.length} of ${worst.loaded} elements held under another key, ` +
        `e.g. \`${ex.held}\` where \`${ex.loaded.join("`, `")}\` was loaded; in the first full load those stood at position ${positions.join(", ")} of their \`add element\` statement`,
    );
    const refused = [...r.add, ...r.change, ...r.bulk].find((s) => s.fellBack);
    if (refused) console.log(`       a delta deleting such an element is refused: ${refused.fellBack}`);
  }
  console.log(`     ${clean} of ${all.length} layout × size runs: the kernel held exactly what was loaded, at every check`);
}

/** The figures the suite reports (bench/results/nft.json): per size, p50/p99 in ms. */
function writeResults(ours: Run[], kps: Run[], derived: Derivation[]): void {
  const stats = (xs: Sample[]) => ({ p50: p50(xs), p99: p99(xs) });
  const sizes = ours.map((o) => {
    const kp = kps.find((x) => x.n === o.n);
    const dv = derived.find((x) => x.n === o.n)!;
    return {
      services: o.n,
      add: stats(o.add),
      derivationP99: pct(dv.apply, 99),
      wholeViewP50: pct(dv.whole, 50),
      fullReload: stats(o.reload!),
      change: stats(o.change),
      firstLoadMs: o.firstLoad.total,
      resyncMs: o.resync!.total,
      ...(kp ? { kubeProxy: { add: stats(kp.add), change: stats(kp.change), firstLoadMs: kp.firstLoad.total } } : {}),
    };
  });
  const extra = kps.filter((kp) => !ours.some((o) => o.n === kp.n)).map((kp) => ({ services: kp.n, kubeProxy: { add: stats(kp.add), change: stats(kp.change), firstLoadMs: kp.firstLoad.total } }));
  mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
  writeFileSync(
    new URL("./results/nft.json", import.meta.url),
    `${JSON.stringify({ benchmark: "nft", date: new Date().toISOString(), reps, quick, full, targets: { addP99Ms: TARGET_ADD_P99_MS, addGrowth: TARGET_ADD_GROWTH, resyncMs: TARGET_RESYNC_MS }, sizes: [...sizes, ...extra] }, null, 2)}\n`,
  );
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("creating a network namespace needs root");
  execFileSync("ip", ["netns", "add", NS]);
  try {
    const ours: Run[] = [];
    const alts: Run[] = [];
    const floors: Floor[] = [];
    for (const n of SIZES) {
      ours.push(await measure(OURS, n, { resync: true, reload: true }));
      floors.push(await floor(n));
      for (const a of ALTERNATIVES) alts.push(await measure(a, n));
    }
    const kps: Run[] = [];
    for (const n of KP_SIZES) kps.push(await measure(KUBE_PROXY, n));
    for (const t of ["ip vipmesh", "ip kubeproxy"]) await dropTable(t);
    progress("done");
    process.stderr.write("\n");
    const derived = SIZES.map(derivation);
    report(ours, kps, alts, floors, derived);
    writeResults(ours, kps, derived);
  } finally {
    deleteNamespace();
  }
}

main().catch((err) => {
  deleteNamespace();
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
