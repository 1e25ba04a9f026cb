// A fake nftables for exactly the scripts render.ts writes: it parses them,
// applies each as one transaction (all or nothing, failing where the kernel
// would: a missing element to delete, an overlapping interval, a chain still
// in use), dumps a canonical text, and walks a packet through the rules the
// way the kernel would for a new connection (nat, then filter). The affinity
// map is written by those walks, as by packets: `update` adds an element or
// refreshes its timeout (never its value), elements expire on the fake's
// clock (`advance`), and a full map takes no more.
//
// It is not an nft parser: any statement or rule render.ts does not write is an error.

import { formatIpv4, parseIpv4 } from "@vipmesh/core";
import { AFFINITY_BACKENDS, AFFINITY_MAP, AFFINITY_SIZE, BACKEND_MAP, CHAIN_MAP, REJECT_SET, TABLE } from "./render.ts";

export type Proto = "tcp" | "udp" | "sctp" | "icmp";

export interface Packet {
  saddr: string;
  daddr: string;
  /** Ignored for icmp. */
  dport: number;
  proto: Proto;
}

export type Verdict = { verdict: "dnat"; to: string } | { verdict: "reject"; with: "tcp reset" | "icmp port-unreachable" } | { verdict: "accept" };

/** Where the connection starts: a process of the sandbox (output) or a packet arriving on one of its interfaces. */
export type Origin = "output" | "prerouting";

export class FakeNftError extends Error {
  override name = "FakeNftError";
}

interface BaseChain {
  type: "nat" | "filter";
  hook: string;
  priority: number;
}

interface RrEntry {
  lo: number;
  hi: number;
  ip: string;
}

interface RrCounter {
  mod: number;
  entries: RrEntry[];
  counter: number;
}

type Rule =
  | { kind: "chain-dispatch"; text: string }
  | { kind: "dnat-random"; text: string }
  | { kind: "reject-tcp"; text: string }
  | { kind: "reject-icmp"; text: string }
  | ({ kind: "dnat-rr"; text: string } & RrCounter)
  // affinity (render.ts's header, steps 1-4)
  | { kind: "affinity-recall"; text: string }
  | { kind: "affinity-keep"; text: string; timeoutS: number }
  | { kind: "affinity-forget"; text: string }
  | { kind: "choose-random"; text: string }
  | ({ kind: "choose-rr"; text: string } & RrCounter)
  | { kind: "affinity-remember"; text: string; timeoutS: number }
  | { kind: "dnat-daddr"; text: string };

interface Chain {
  base?: BaseChain;
  rules: Rule[];
}

interface Slice {
  vip: number;
  lo: number;
  hi: number;
  ip: string;
}

interface TableState {
  /** Declarations of sets and maps, by name. */
  sets: Map<string, string>;
  chains: Map<string, Chain>;
  /** @be, by element key text. */
  slices: Map<string, Slice>;
  /** @vips_without_backends. */
  rejected: Set<string>;
  /** @vip_chains: VIP → chain. */
  chained: Map<string, string>;
  /** @affinity_backends: "VIP . backend". */
  affinityBackends: Set<string>;
  /** @affinity, written by packets: "client . VIP" → backend, until `expires` (the fake's clock, s). */
  affinity: Map<string, { to: string; expires: number }>;
}

const BE_DECL = "typeof ip daddr . numgen random mod 65536 : ip daddr; flags interval;";
const REJECT_DECL = "type ipv4_addr;";
const CHAIN_DECL = "type ipv4_addr : verdict;";
const AFFINITY_DECL = `type ipv4_addr . ipv4_addr : ipv4_addr; size ${AFFINITY_SIZE}; flags dynamic, timeout;`;
const AFFINITY_BACKENDS_DECL = "type ipv4_addr . ipv4_addr;";
const DECLS = new Map([
  [BACKEND_MAP, BE_DECL],
  [REJECT_SET, REJECT_DECL],
  [CHAIN_MAP, CHAIN_DECL],
  [AFFINITY_MAP, AFFINITY_DECL],
  [AFFINITY_BACKENDS, AFFINITY_BACKENDS_DECL],
]);
const MAPS = new Set([BACKEND_MAP, CHAIN_MAP, AFFINITY_MAP]);

/** The per-element timeout of affinity rules. */
const REMEMBER = String.raw`update @${AFFINITY_MAP} \{ ip saddr \. ct original ip daddr timeout (\d+)s : ip daddr \}`;

const IP = String.raw`\d{1,3}(?:\.\d{1,3}){3}`;
const NAME = String.raw`[A-Za-z_][A-Za-z0-9_]*`;
const T = `ip ${TABLE}`;

function ip(text: string): string {
  if (parseIpv4(text) === undefined) throw new FakeNftError(`not an IPv4 address: ${text}`);
  return text;
}

/** Statements of a script: comments dropped, a statement with braces runs until they close. */
export function statementsOf(script: string): string[] {
  const out: string[] = [];
  let current = "";
  let depth = 0;
  for (const raw of script.split("\n")) {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") continue;
    current = current === "" ? line : `${current} ${line}`;
    for (const ch of line) depth += ch === "{" ? 1 : ch === "}" ? -1 : 0;
    if (depth < 0) throw new FakeNftError(`unbalanced braces: ${current}`);
    if (depth === 0) {
      out.push(current.replace(/\s+/g, " "));
      current = "";
    }
  }
  if (current !== "") throw new FakeNftError(`unterminated statement: ${current}`);
  return out;
}

const cloneChain = (c: Chain): Chain => ({ base: c.base, rules: c.rules.map((r) => ({ ...r })) });

function cloneTable(t: TableState): TableState {
  return {
    sets: new Map(t.sets),
    chains: new Map([...t.chains].map(([k, c]) => [k, cloneChain(c)])),
    slices: new Map(t.slices),
    rejected: new Set(t.rejected),
    chained: new Map(t.chained),
    affinityBackends: new Set(t.affinityBackends),
    affinity: new Map(t.affinity),
  };
}

const emptyTable = (): TableState => ({
  sets: new Map(),
  chains: new Map(),
  slices: new Map(),
  rejected: new Set(),
  chained: new Map(),
  affinityBackends: new Set(),
  affinity: new Map(),
});

/** A new connection's first packet on its way through nat: the header's daddr may differ from conntrack's. */
interface InFlight {
  saddr: string;
  /** The header's destination, which rules may rewrite. */
  daddr: string;
  /** `ct original ip daddr`. */
  original: string;
  random: number;
}

/** The parsed map of `numgen inc mod N map { … }`, which must cover 0 … N-1 exactly once. */
function rrCounter(mod: string, body: string): RrCounter {
  const entries = body.split(",").map((e) => {
    const x = new RegExp(`^(\\d+)(?:-(\\d+))? : (${IP})$`).exec(e.trim());
    if (!x) throw new FakeNftError(`bad rr map entry: ${e}`);
    return { lo: Number(x[1]), hi: Number(x[2] ?? x[1]), ip: ip(x[3]!) };
  });
  // the map must cover 0 … mod-1 exactly once, or some connections find no backend
  const covered = entries.sort((a, b) => a.lo - b.lo).reduce((next, e) => (e.lo === next && e.hi >= e.lo ? e.hi + 1 : NaN), 0);
  if (covered !== Number(mod)) throw new FakeNftError(`rr map does not cover 0-${Number(mod) - 1}`);
  return { mod: Number(mod), entries, counter: 0 };
}

const rrNext = (r: RrCounter): string => {
  const n = r.counter++ % r.mod;
  return r.entries.find((e) => e.lo <= n && n <= e.hi)!.ip;
};

export class FakeNftables {
  private table: TableState | undefined;
  /** The clock elements expire on, in seconds. */
  private now = 0;

  /** Lets time pass: affinity elements not refreshed meanwhile may expire. */
  advance(seconds: number): void {
    this.now += seconds;
  }

  /** Applies one `nft -f` script as one transaction: on any error nothing changes. */
  apply(script: string): void {
    const work = this.table ? cloneTable(this.table) : undefined;
    let state = work;
    for (const [i, stmt] of statementsOf(script).entries()) {
      try {
        state = this.run(state, stmt);
      } catch (e) {
        throw new FakeNftError(`statement ${i + 1}: ${(e as Error).message}\n  ${stmt.slice(0, 200)}`);
      }
    }
    this.table = state;
  }

  private run(t: TableState | undefined, stmt: string): TableState | undefined {
    let m: RegExpExecArray | null;
    if (stmt === `add table ${T}`) return t ?? emptyTable();
    if (stmt === `delete table ${T}`) {
      if (!t) throw new FakeNftError("No such file or directory: table");
      return undefined;
    }
    if (!t) throw new FakeNftError("No such file or directory: table");

    if ((m = new RegExp(`^add (?:map|set) ${T} (${NAME}) \\{ (.*) \\}$`).exec(stmt))) {
      const [, name, decl] = m as unknown as [string, string, string];
      if (DECLS.get(name) !== decl) throw new FakeNftError(`unexpected declaration of ${name}: ${decl}`);
      if (t.sets.has(name) && t.sets.get(name) !== decl) throw new FakeNftError(`${name} exists with another type`);
      t.sets.set(name, decl);
      return t;
    }
    if ((m = new RegExp(`^add chain ${T} (${NAME}) \\{ type (nat|filter) hook (output|prerouting|forward) priority (-?\\d+); policy accept; \\}$`).exec(stmt))) {
      const [, name, type, hook, prio] = m as unknown as [string, string, "nat" | "filter", string, string];
      if (!t.chains.has(name)) t.chains.set(name, { base: { type, hook, priority: Number(prio) }, rules: [] });
      return t;
    }
    if ((m = new RegExp(`^add chain ${T} (${NAME})$`).exec(stmt))) {
      if (!t.chains.has(m[1]!)) t.chains.set(m[1]!, { rules: [] });
      return t;
    }
    if ((m = new RegExp(`^flush chain ${T} (${NAME})$`).exec(stmt))) {
      this.chain(t, m[1]!).rules = [];
      return t;
    }
    if ((m = new RegExp(`^delete chain ${T} (${NAME})$`).exec(stmt))) {
      const c = this.chain(t, m[1]!);
      if (c.rules.length > 0) throw new FakeNftError(`Device or resource busy: chain ${m[1]} has rules`);
      if ([...t.chained.values()].includes(m[1]!)) throw new FakeNftError(`Device or resource busy: chain ${m[1]} is referenced`);
      t.chains.delete(m[1]!);
      return t;
    }
    if ((m = new RegExp(`^add rule ${T} (${NAME}) (.*)$`).exec(stmt))) {
      this.chain(t, m[1]!).rules.push(this.rule(t, m[2]!));
      return t;
    }
    if ((m = new RegExp(`^(add|delete) element ${T} (${NAME}) \\{ (.*) \\}$`).exec(stmt))) {
      const [, verb, set, body] = m as unknown as [string, "add" | "delete", string, string];
      if (!t.sets.has(set)) throw new FakeNftError(`No such file or directory: set ${set}`);
      for (const el of body.split(",").map((s) => s.trim())) this.element(t, verb, set, el);
      return t;
    }
    throw new FakeNftError(`statement the fake does not know`);
  }

  private chain(t: TableState, name: string): Chain {
    const c = t.chains.get(name);
    if (!c) throw new FakeNftError(`No such file or directory: chain ${name}`);
    return c;
  }

  private rule(t: TableState, text: string): Rule {
    const needs = (...sets: string[]) => {
      for (const set of sets) if (!t.sets.has(set)) throw new FakeNftError(`No such file or directory: set ${set}`);
    };
    let m: RegExpExecArray | null;
    if (text === `ip daddr vmap @${CHAIN_MAP}`) return needs(CHAIN_MAP), { kind: "chain-dispatch", text };
    if (text === `dnat to ip daddr . numgen random mod 65536 map @${BACKEND_MAP}`) return needs(BACKEND_MAP), { kind: "dnat-random", text };
    if (text === `ip daddr @${REJECT_SET} meta l4proto tcp reject with tcp reset`) return needs(REJECT_SET), { kind: "reject-tcp", text };
    if (text === `ip daddr @${REJECT_SET} reject with icmp type port-unreachable`) return needs(REJECT_SET), { kind: "reject-icmp", text };
    if ((m = /^dnat to numgen inc mod (\d+) map \{ (.*) \}$/.exec(text))) return { kind: "dnat-rr", text, ...rrCounter(m[1]!, m[2]!) };
    if (text === `ip daddr set ip saddr . ip daddr map @${AFFINITY_MAP}`) return needs(AFFINITY_MAP), { kind: "affinity-recall", text };
    if ((m = new RegExp(`^ct original ip daddr \\. ip daddr @${AFFINITY_BACKENDS} ${REMEMBER} dnat to ip daddr$`).exec(text))) {
      return needs(AFFINITY_MAP, AFFINITY_BACKENDS), { kind: "affinity-keep", text, timeoutS: Number(m[1]) };
    }
    if (text === `ip daddr set ct original ip daddr delete @${AFFINITY_MAP} { ip saddr . ip daddr : ip daddr }`) return needs(AFFINITY_MAP), { kind: "affinity-forget", text };
    if (text === `ip daddr set ip daddr . numgen random mod 65536 map @${BACKEND_MAP}`) return needs(BACKEND_MAP), { kind: "choose-random", text };
    if ((m = /^ip daddr set numgen inc mod (\d+) map \{ (.*) \}$/.exec(text))) return { kind: "choose-rr", text, ...rrCounter(m[1]!, m[2]!) };
    if ((m = new RegExp(`^${REMEMBER}$`).exec(text))) return needs(AFFINITY_MAP), { kind: "affinity-remember", text, timeoutS: Number(m[1]) };
    if (text === "dnat to ip daddr") return { kind: "dnat-daddr", text };
    throw new FakeNftError(`rule the fake does not know: ${text}`);
  }

  private element(t: TableState, verb: "add" | "delete", set: string, el: string): void {
    let m: RegExpExecArray | null;
    if (set === BACKEND_MAP) {
      m = new RegExp(`^(${IP}) \\. (\\d+)-(\\d+)(?: : (${IP}))?$`).exec(el);
      if (!m || (verb === "add") !== (m[4] !== undefined)) throw new FakeNftError(`bad ${set} element: ${el}`);
      const key = `${m[1]} . ${m[2]}-${m[3]}`;
      if (verb === "delete") {
        if (!t.slices.delete(key)) throw new FakeNftError(`No such file or directory: element ${key}`);
        return;
      }
      const s: Slice = { vip: parseIpv4(ip(m[1]!))!, lo: Number(m[2]), hi: Number(m[3]), ip: ip(m[4]!) };
      if (!(s.lo <= s.hi && s.hi < 65536)) throw new FakeNftError(`bad interval: ${el}`);
      const same = t.slices.get(key);
      if (same) {
        if (same.ip !== s.ip) throw new FakeNftError(`File exists: element ${key} maps to ${same.ip}`);
        return;
      }
      for (const o of t.slices.values()) {
        if (o.vip === s.vip && o.lo <= s.hi && s.lo <= o.hi) throw new FakeNftError(`File exists: ${el} overlaps an element`);
      }
      t.slices.set(key, s);
      return;
    }
    if (set === REJECT_SET) {
      const addr = ip(el);
      if (verb === "add") t.rejected.add(addr);
      else if (!t.rejected.delete(addr)) throw new FakeNftError(`No such file or directory: element ${addr}`);
      return;
    }
    if (set === CHAIN_MAP) {
      m = new RegExp(`^(${IP})(?: : goto (${NAME}))?$`).exec(el);
      if (!m || (verb === "add") !== (m[2] !== undefined)) throw new FakeNftError(`bad ${set} element: ${el}`);
      const addr = ip(m[1]!);
      if (verb === "delete") {
        if (!t.chained.delete(addr)) throw new FakeNftError(`No such file or directory: element ${addr}`);
        return;
      }
      this.chain(t, m[2]!);
      const old = t.chained.get(addr);
      if (old !== undefined && old !== m[2]) throw new FakeNftError(`File exists: element ${addr}`);
      t.chained.set(addr, m[2]!);
      return;
    }
    if (set === AFFINITY_BACKENDS) {
      m = new RegExp(`^(${IP}) \\. (${IP})$`).exec(el);
      if (!m) throw new FakeNftError(`bad ${set} element: ${el}`);
      const key = `${ip(m[1]!)} . ${ip(m[2]!)}`;
      if (verb === "add") t.affinityBackends.add(key);
      else if (!t.affinityBackends.delete(key)) throw new FakeNftError(`No such file or directory: element ${key}`);
      return;
    }
    throw new FakeNftError(`set the fake does not know: ${set}`);
  }

  /**
   * The first packet of a new connection, as the kernel sees it: nat chains of
   * its hook by priority, then filter (output for a local process, forward for
   * a forwarded packet) on the possibly rewritten address. `random` is the
   * value `numgen random mod 65536` draws (0 … 65535); rr counters advance,
   * affinity elements are written.
   */
  walk(packet: Packet, random: number, origin: Origin = "output"): Verdict {
    if (!Number.isInteger(random) || random < 0 || random > 65535) throw new RangeError(`random ${random} is not in 0-65535`);
    ip(packet.daddr);
    ip(packet.saddr);
    const t = this.table;
    if (!t) return { verdict: "accept" };
    const chains = (type: string, hook: string) =>
      [...t.chains.values()].filter((c) => c.base?.type === type && c.base.hook === hook).sort((a, b) => a.base!.priority - b.base!.priority);

    const p: InFlight = { saddr: packet.saddr, daddr: packet.daddr, original: packet.daddr, random };
    let to: string | undefined;
    for (const c of chains("nat", origin)) {
      to = this.natVerdict(t, c, p);
      if (to !== undefined) break;
    }
    // a header rewritten without NAT: conntrack and the packet disagree, the connection breaks
    if (to === undefined && p.daddr !== p.original) throw new FakeNftError(`${packet.daddr}: nat rewrote the header to ${p.daddr} but set up no NAT`);
    const daddr = to ?? packet.daddr;
    for (const c of chains("filter", origin === "output" ? "output" : "forward")) {
      for (const r of c.rules) {
        if (!t.rejected.has(daddr)) continue;
        if (r.kind === "reject-tcp" && packet.proto === "tcp") return { verdict: "reject", with: "tcp reset" };
        if (r.kind === "reject-icmp") return { verdict: "reject", with: "icmp port-unreachable" };
      }
    }
    if (to === undefined) return { verdict: "accept" };
    return { verdict: "dnat", to: packet.proto === "icmp" ? to : `${to}:${packet.dport}` };
  }

  /** The address a nat chain NATs the connection to, if it does; rules may rewrite `p.daddr` on the way. */
  private natVerdict(t: TableState, c: Chain, p: InFlight): string | undefined {
    const key = (vip: string) => `${p.saddr} . ${vip}`;
    const live = (k: string) => {
      const e = t.affinity.get(k);
      if (e && e.expires <= this.now) t.affinity.delete(k); // expired: gone, whether or not collected yet
      return t.affinity.get(k);
    };
    /** `update`: adds, or refreshes the timeout of what is there (its value stays); false when the map is full. */
    const update = (timeoutS: number): boolean => {
      const k = key(p.original);
      const e = live(k);
      if (!e && t.affinity.size >= AFFINITY_SIZE) return false;
      t.affinity.set(k, { to: e?.to ?? p.daddr, expires: this.now + timeoutS });
      return true;
    };
    const randomChoice = (vip: string): string | undefined => {
      const v = parseIpv4(vip)!;
      for (const s of t.slices.values()) if (s.vip === v && s.lo <= p.random && p.random <= s.hi) return s.ip;
      return undefined;
    };
    for (const r of c.rules) {
      switch (r.kind) {
        case "chain-dispatch": {
          const target = t.chained.get(p.daddr);
          // goto: the target's verdict is final for this chain
          if (target !== undefined) return this.natVerdict(t, this.chain(t, target), p);
          break;
        }
        case "dnat-rr":
          return rrNext(r);
        case "dnat-random": {
          const to = randomChoice(p.daddr);
          if (to !== undefined) return to;
          break;
        }
        case "affinity-recall": {
          const e = live(key(p.daddr));
          if (e) p.daddr = e.to;
          break;
        }
        case "affinity-keep":
          // a failed update breaks the rule before its dnat
          if (t.affinityBackends.has(`${p.original} . ${p.daddr}`) && update(r.timeoutS)) return p.daddr;
          break;
        case "affinity-forget":
          p.daddr = p.original;
          t.affinity.delete(key(p.daddr));
          break;
        case "choose-random": {
          const to = randomChoice(p.daddr);
          if (to !== undefined) p.daddr = to;
          break;
        }
        case "choose-rr":
          p.daddr = rrNext(r);
          break;
        case "affinity-remember":
          update(r.timeoutS);
          break;
        case "dnat-daddr":
          return p.daddr;
        case "reject-tcp":
        case "reject-icmp":
          break;
      }
    }
    return undefined;
  }

  /** Where the affinity map sends `client`'s new connections to `vip` now, if it remembers them. */
  remembered(client: string, vip: string): string | undefined {
    const e = this.table?.affinity.get(`${client} . ${vip}`);
    return e && e.expires > this.now ? e.to : undefined;
  }

  /** Sorted, canonical text of the table: chains by name with their rules in order, elements sorted. */
  dump(): string {
    const t = this.table;
    if (!t) return "";
    const byIp = (a: string, b: string) => parseIpv4(a)! - parseIpv4(b)!;
    const out = [`table ${T}`];
    for (const name of [...t.sets.keys()].sort()) {
      out.push(`${MAPS.has(name) ? "map" : "set"} ${name} { ${t.sets.get(name)} }`);
      if (name === BACKEND_MAP) {
        const slices = [...t.slices.values()].sort((a, b) => a.vip - b.vip || a.lo - b.lo);
        for (const s of slices) out.push(`  ${formatIpv4(s.vip)} . ${s.lo}-${s.hi} : ${s.ip}`);
      } else if (name === REJECT_SET) {
        for (const v of [...t.rejected].sort(byIp)) out.push(`  ${v}`);
      } else if (name === CHAIN_MAP) {
        for (const v of [...t.chained.keys()].sort(byIp)) out.push(`  ${v} : goto ${t.chained.get(v)}`);
      } else if (name === AFFINITY_BACKENDS) {
        for (const v of [...t.affinityBackends].sort()) out.push(`  ${v}`);
      } else if (name === AFFINITY_MAP) {
        for (const [k, e] of [...t.affinity].sort(([a], [b]) => (a < b ? -1 : 1))) {
          if (e.expires > this.now) out.push(`  ${k} : ${e.to} expires ${e.expires - this.now}s`);
        }
      }
    }
    for (const name of [...t.chains.keys()].sort()) {
      const c = t.chains.get(name)!;
      out.push(c.base ? `chain ${name} { type ${c.base.type} hook ${c.base.hook} priority ${c.base.priority}; }` : `chain ${name}`);
      for (const r of c.rules) out.push(`  ${r.text}`);
    }
    return `${out.join("\n")}\n`;
  }
}
