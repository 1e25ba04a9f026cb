// Encrypted overlays, as data: what an IpsecPlan asks of xfrm (ESP SAs in
// transport mode, out policies) and of the guard table that keeps an encrypted
// VNI's VXLAN from crossing the underlay in plaintext, what `ip xfrm
// state/policy list` says is there, and the lines that turn one into the
// other. Pure: kernel.ts runs the commands. The shape, and why
// (docs/ARCHITECTURE.md, "IPsec shape").

import { createHash } from "node:crypto";
import { OVERLAY_KEY_BYTES, type OverlayKey, parseIpv4 } from "@vipmesh/core";
import { checkVni, compareIpv4, isIpv4, KernelPlanError } from "../exec/canonical.ts";
import { deleteTableScript, replaceTableScript } from "../exec/nft.ts";
import { VXLAN_PORT } from "../overlay/types.ts";
import type { IpsecPlan } from "./types.ts";

/** reqid of every vipmesh SA and policy template ("vipm"): what marks them as ours. */
export const IPSEC_REQID = 0x7669706d;
/** The bit the guard table sets on encrypted VNIs' VXLAN packets, and the out policies select. */
export const IPSEC_MARK = 0x10000000;
export const IPSEC_TABLE = "vipmesh_ipsec";
const IPSEC_AEAD = "rfc4106(gcm(aes))";
const IPSEC_ICV_BITS = 128;

/**
 * Bytes ESP in transport mode with rfc4106(gcm(aes)) adds to a VXLAN packet,
 * at worst, rounded up to a multiple of 4: ESP header 8 (SPI, sequence number)
 * + IV 8 + padding 0-3 (payload + 2 trailer bytes padded to 4) + trailer 2
 * (pad length, next header) + ICV 16 = 34 to 37, so 40. The outer IP header
 * is the VXLAN packet's own (transport mode). An overlay MTU of OVERLAY_MTU −
 * ESP_OVERHEAD (1410) keeps every ESP packet within a 1500-byte underlay.
 */
export const ESP_OVERHEAD = 40;

const MAX_KEY_ID = 0xffff;
const HEX = /^[0-9a-f]+$/;

/**
 * The SPI of the SA that carries traffic from `src` under key `keyId`, which
 * both ends compute alone: (key ID mod 127) + 1 in the top byte, the low 24
 * bits of the sender's address below (so 2^24 ≤ SPI < 2^31). The kernel finds
 * an SA by (destination, SPI), so the SAs into one node must differ, and they
 * do by construction: the peers' addresses differ in their low 24 bits on any
 * underlay within one /8, and the keys alive at once have consecutive IDs,
 * which differ mod 127. (Hashing addresses and key into the SPI, as Docker
 * does, collides by chance: odds about n²/2^32 for n SAs into a node, in a
 * 1000-node cluster about one node per rotation.) checkIpsecPlan refuses a
 * plan in which two SAs into this node would still share an SPI.
 */
export function spiFor(keyId: number, src: string): number {
  return ((keyId % 127) + 1) * 2 ** 24 + ((parseIpv4(src) ?? 0) % 2 ** 24);
}

const hex8 = (n: number) => `0x${n.toString(16).padStart(8, "0")}`;

/** An ESP SA, as vipmesh makes them and as read back. */
export interface XfrmState {
  src: string;
  dst: string;
  proto: string;
  spi: number;
  reqid: number;
  mode: string;
  /** AEAD algorithm, key (lowercase hex, no 0x) and ICV length; undefined when the SA has none. */
  aead: { name: string; key: string; icvBits: number } | undefined;
}

/** An xfrm policy, as vipmesh makes them and as read back (what it does not make stays undefined). */
export interface XfrmPolicy {
  dir: string;
  /** Selector, CIDR. */
  src: string;
  dst: string;
  proto: string | undefined;
  dport: number | undefined;
  mark: { value: number; mask: number } | undefined;
  priority: number;
  tmpl: { src: string; dst: string; proto: string; spi: number; reqid: number; mode: string } | undefined;
}

export interface IpsecWanted {
  states: XfrmState[];
  policies: XfrmPolicy[];
  /** The guard table's script and the hash it carries in its comment; undefined: no table. */
  guard: { script: string; hash: string } | undefined;
}

function check(ok: boolean, what: string): void {
  if (!ok) throw new KernelPlanError(`ipsec plan: ${what}`);
}

/** Throws a KernelPlanError naming what is wrong with the plan; nothing is written from a plan that fails. */
export function checkIpsecPlan(plan: IpsecPlan): void {
  check(isIpv4(plan.localAddr), `localAddr "${plan.localAddr}" is not an IPv4 address`);
  for (const vni of plan.vnis) checkVni(vni, "ipsec plan");
  for (const p of plan.peers) {
    check(isIpv4(p), `peer "${p}" is not an IPv4 address`);
    check(p !== plan.localAddr, `peer ${p} is this node's own address`);
  }
  if (plan.vnis.length === 0 || plan.peers.length === 0) return;
  const ids = new Set<number>();
  for (const k of plan.keys) {
    check(Number.isInteger(k.id) && k.id >= 1 && k.id <= MAX_KEY_ID, `key ID ${k.id} is not in 1-${MAX_KEY_ID}`);
    check(!ids.has(k.id), `key ID ${k.id} is there twice`);
    ids.add(k.id);
    const secret = k.secret.replace(/^0x/i, "").toLowerCase();
    check(HEX.test(secret) && secret.length === OVERLAY_KEY_BYTES * 2, `key ${k.id}: the secret is not ${OVERLAY_KEY_BYTES} bytes of hex`);
  }
  check(ids.has(plan.txKeyId), `txKeyId ${plan.txKeyId} is not one of the keys (${[...ids].join(", ") || "none"})`);
  // an SA is found by (destination, SPI): two of ours into one address must not share one
  const seen = new Map<string, string>();
  for (const s of wantedStates(plan)) {
    const at = `${s.dst} ${hex8(s.spi)}`;
    const what = `${s.src}→${s.dst} key ${keyOfSpi(plan, s)}`;
    check(!seen.has(at), `SPI ${hex8(s.spi)} into ${s.dst} is both ${seen.get(at)} and ${what}: two peers share the low 24 bits of their addresses`);
    seen.set(at, what);
  }
}

const keyOfSpi = (plan: IpsecPlan, s: XfrmState) => plan.keys.find((k) => spiFor(k.id, s.src) === s.spi)?.id;
const active = (plan: IpsecPlan) => plan.vnis.length > 0 && plan.peers.length > 0;
const sortedPeers = (plan: IpsecPlan) => [...new Set(plan.peers)].sort(compareIpv4);
const sortedKeys = (plan: IpsecPlan): OverlayKey[] => [...plan.keys].sort((a, b) => a.id - b.id);

function wantedStates(plan: IpsecPlan): XfrmState[] {
  if (!active(plan)) return [];
  const states: XfrmState[] = [];
  for (const peer of sortedPeers(plan)) {
    for (const k of sortedKeys(plan)) {
      const aead = { name: IPSEC_AEAD, key: k.secret.replace(/^0x/i, "").toLowerCase(), icvBits: IPSEC_ICV_BITS };
      for (const [src, dst] of [[plan.localAddr, peer], [peer, plan.localAddr]] as const) {
        states.push({ src, dst, proto: "esp", spi: spiFor(k.id, src), reqid: IPSEC_REQID, mode: "transport", aead });
      }
    }
  }
  return states;
}

const outPolicy = (local: string, peer: string, spi: number): XfrmPolicy => ({
  dir: "out",
  src: `${local}/32`,
  dst: `${peer}/32`,
  proto: "udp",
  dport: VXLAN_PORT,
  mark: { value: IPSEC_MARK, mask: IPSEC_MARK },
  priority: 0,
  tmpl: { src: local, dst: peer, proto: "esp", spi, reqid: IPSEC_REQID, mode: "transport" },
});

/** The guard table's script for these VNIs (replaces the table whole, in one transaction). */
export function renderGuard(vnis: number[]): { script: string; hash: string } {
  const set = `{ ${[...new Set(vnis)].sort((a, b) => a - b).join(", ")} }`;
  // UDP to VXLAN's port whose VNI (UDP payload bytes 4-6, transport header bits 96-119) is an encrypted network's
  const match = `udp dport ${VXLAN_PORT} @th,96,24 ${set}`;
  const chains = [
    "  chain egress_mark {",
    // a route chain: a changed mark re-routes the packet, and the re-route looks up xfrm policies with it
    "    type route hook output priority -150; policy accept;",
    `    ${match} meta mark set meta mark | ${hex8(IPSEC_MARK)}`,
    "  }",
    "  chain egress_guard {",
    // postrouting sees local packets and forwarded ones (a sandbox's own VXLAN) alike, before any transform
    "    type filter hook postrouting priority 0; policy accept;",
    `    ${match} rt ipsec missing counter drop`,
    "  }",
    "  chain ingress_guard {",
    "    type filter hook input priority 0; policy accept;",
    `    ${match} meta ipsec missing counter drop`,
    "  }",
  ];
  const hash = createHash("sha256").update(chains.join("\n")).digest("hex").slice(0, 12);
  return { script: replaceTableScript(IPSEC_TABLE, [`  comment "${GUARD_COMMENT}${hash}"`, ...chains]), hash };
}

const GUARD_COMMENT = "vipmesh encrypted overlay guard ";
/** Each chain of the guard and what its one rule must say. */
const GUARD_RULES: Record<string, RegExp> = {
  egress_mark: new RegExp(`meta mark set meta mark \\| ${hex8(IPSEC_MARK)}`),
  egress_guard: /rt ipsec missing counter packets \d+ bytes \d+ drop/,
  ingress_guard: /meta ipsec missing counter packets \d+ bytes \d+ drop/,
};

/** Deletes the guard table whether or not it is there, in one transaction. */
export const removeGuardScript = (): string => deleteTableScript(IPSEC_TABLE);

/**
 * Whether `nft list table ip vipmesh_ipsec` shows the guard rendered with
 * `hash`, every chain with its rule: undefined when it does, else what is wrong.
 */
export function guardProblem(listing: string, hash: string): string | undefined {
  const comment = new RegExp(`comment "${GUARD_COMMENT}([0-9a-f]+)"`).exec(listing)?.[1];
  if (comment === undefined) return `table ${IPSEC_TABLE} is not vipmesh's guard (no comment)`;
  if (comment !== hash) return `table ${IPSEC_TABLE} is an older guard (${comment}, not ${hash})`;
  for (const [chain, rule] of Object.entries(GUARD_RULES)) {
    // the chain's lines, up to the line that closes it (a set's braces stay on their rule's line)
    const body = new RegExp(`^\\s*chain ${chain} \\{\\n([\\s\\S]*?)^\\s*\\}\\s*$`, "m").exec(listing)?.[1];
    if (body === undefined) return `table ${IPSEC_TABLE} has no chain ${chain}`;
    if (!rule.test(body)) return `chain ${chain} of ${IPSEC_TABLE} lacks its rule`;
  }
  return undefined;
}

/**
 * Everything the plan asks for. The plan must have passed checkIpsecPlan.
 * The guard stays as long as there is an encrypted VNI, peers or not: a node
 * alone with an encrypted network must still drop plaintext VXLAN injected
 * into it from the underlay.
 */
export function wantedIpsec(plan: IpsecPlan): IpsecWanted {
  if (plan.vnis.length === 0) return { states: [], policies: [], guard: undefined };
  const peers = active(plan) ? sortedPeers(plan) : [];
  const policies = peers.map((peer) => outPolicy(plan.localAddr, peer, spiFor(plan.txKeyId, plan.localAddr)));
  return { states: wantedStates(plan), policies, guard: renderGuard(plan.vnis) };
}

// ---- reading `ip xfrm state list` and `ip xfrm policy list` (iproute2 6.1 ignores -j for xfrm: text it is)

/** Splits a listing into entries: each starts at a line that does not begin with white space. */
function entries(text: string): string[][] {
  const out: string[][] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    if (!/^\s/.test(line) || out.length === 0) out.push([line.trim()]);
    else out[out.length - 1]!.push(line.trim());
  }
  return out;
}


/** Every SA `ip xfrm state list` shows (anyone's: callers keep those with IPSEC_REQID). */
export function parseXfrmStates(text: string): XfrmState[] {
  const states: XfrmState[] = [];
  for (const e of entries(text)) {
    const head = /^src (\S+) dst (\S+)$/.exec(e[0]!);
    const id = e.map((l) => /^proto (\S+) spi (0x[0-9a-f]+)(?:\(\d+\))? reqid (\d+)(?:\(0x[0-9a-f]+\))? mode (\S+)/.exec(l)).find((m) => m);
    if (!head || !id) continue;
    const aead = e.map((l) => /^aead (\S+) 0x([0-9a-f]+)(?: \(\d+ bits\))? (\d+)$/.exec(l)).find((m) => m);
    states.push({
      src: head[1]!,
      dst: head[2]!,
      proto: id[1]!,
      spi: parseInt(id[2]!, 16),
      reqid: Number(id[3]),
      mode: id[4]!,
      aead: aead ? { name: aead[1]!, key: aead[2]!, icvBits: Number(aead[3]) } : undefined,
    });
  }
  return states;
}

/** Every policy `ip xfrm policy list` shows (anyone's: callers keep those whose template has IPSEC_REQID). */
export function parseXfrmPolicies(text: string): XfrmPolicy[] {
  const policies: XfrmPolicy[] = [];
  for (const e of entries(text)) {
    const sel = /^src (\S+) dst (\S+)(.*)$/.exec(e[0]!);
    const dir = e.map((l) => /^dir (\S+) priority (\d+)/.exec(l)).find((m) => m);
    if (!sel || !dir) continue;
    const rest = sel[3]!;
    const dport = /\bdport (\d+)/.exec(rest)?.[1];
    const mark = e.map((l) => /^mark (0x[0-9a-f]+)\/(0x[0-9a-f]+)/.exec(l)).find((m) => m);
    const tmplAt = e.findIndex((l) => l.startsWith("tmpl "));
    const tsel = tmplAt >= 0 ? /^tmpl src (\S+) dst (\S+)/.exec(e[tmplAt]!) : null;
    const tid = tmplAt >= 0 ? /^proto (\S+)(?: spi (0x[0-9a-f]+))? reqid (\d+) mode (\S+)/.exec(e[tmplAt + 1] ?? "") : null;
    policies.push({
      dir: dir[1]!,
      src: sel[1]!,
      dst: sel[2]!,
      proto: /\bproto (\S+)/.exec(rest)?.[1],
      dport: dport === undefined ? undefined : Number(dport),
      mark: mark ? { value: parseInt(mark[1]!, 16), mask: parseInt(mark[2]!, 16) } : undefined,
      priority: Number(dir[2]),
      tmpl: tsel && tid ? { src: tsel[1]!, dst: tsel[2]!, proto: tid[1]!, spi: tid[2] ? parseInt(tid[2], 16) : 0, reqid: Number(tid[3]), mode: tid[4]! } : undefined,
    });
  }
  return policies;
}

const isOurState = (s: XfrmState): boolean => s.reqid === IPSEC_REQID;
const isOurPolicy = (p: XfrmPolicy): boolean => p.tmpl?.reqid === IPSEC_REQID;

// ---- the difference, as `ip -batch` lines

const stateKey = (s: XfrmState) => `${s.src} ${s.dst} ${s.proto} ${s.spi}`;
const policyKey = (p: XfrmPolicy) => `${p.dir} ${p.src} ${p.dst} ${p.proto ?? ""} ${p.dport ?? ""} ${p.mark ? `${p.mark.value}/${p.mark.mask}` : ""}`;
const stateAddLine = (s: XfrmState): string =>
  `xfrm state add src ${s.src} dst ${s.dst} proto ${s.proto} spi ${hex8(s.spi)} reqid ${s.reqid} mode ${s.mode} replay-window 0` +
  (s.aead ? ` aead ${s.aead.name} 0x${s.aead.key} ${s.aead.icvBits}` : "");
const stateDeleteLine = (s: XfrmState): string => `xfrm state delete src ${s.src} dst ${s.dst} proto ${s.proto} spi ${hex8(s.spi)}`;

const policySelector = (p: XfrmPolicy) =>
  `dir ${p.dir} src ${p.src} dst ${p.dst}${p.proto ? ` proto ${p.proto}` : ""}${p.dport !== undefined ? ` dport ${p.dport}` : ""}` +
  (p.mark ? ` mark ${hex8(p.mark.value)} mask ${hex8(p.mark.mask)}` : "") +
  (p.priority ? ` priority ${p.priority}` : "");
/** `update` adds a policy or replaces the one with its selector: how the sending key is switched. */
const policyUpdateLine = (p: XfrmPolicy): string => {
  const t = p.tmpl!;
  return `xfrm policy update ${policySelector(p)} tmpl src ${t.src} dst ${t.dst} proto ${t.proto} spi ${hex8(t.spi)} reqid ${t.reqid} mode ${t.mode}`;
};
const policyDeleteLine = (p: XfrmPolicy): string => `xfrm policy delete ${policySelector({ ...p, priority: 0 })}`;
/** An SA or policy is as wanted when it renders to the same line: every field that line carries is one that matters. */
const sameState = (a: XfrmState, b: XfrmState) => stateAddLine(a) === stateAddLine(b);
const samePolicy = (a: XfrmPolicy, b: XfrmPolicy) => policyUpdateLine(a) === policyUpdateLine(b);

/**
 * The lines that bring vipmesh's SAs and policies from `have` to `want`, in
 * an order that never leaves a policy naming a missing SA: SAs added, then
 * policies added or switched, then policies and SAs no longer wanted deleted.
 * An SA that differs (another key under the same SPI) is deleted and added
 * again. Others' SAs and policies are not looked at. Nothing when converged.
 */
export function xfrmChanges(want: IpsecWanted, haveStates: XfrmState[], havePolicies: XfrmPolicy[]): string[] {
  const states = new Map(haveStates.filter(isOurState).map((s) => [stateKey(s), s]));
  const policies = new Map(havePolicies.filter((p) => isOurPolicy(p) && p.dir === "out").map((p) => [policyKey(p), p]));
  const wantedStates = new Set(want.states.map(stateKey));
  const wantedPolicies = new Set(want.policies.map(policyKey));
  const adds: string[] = [];
  const updates: string[] = [];
  for (const s of want.states) {
    const h = states.get(stateKey(s));
    if (h && sameState(h, s)) continue;
    if (h) adds.push(stateDeleteLine(h));
    adds.push(stateAddLine(s));
  }
  for (const p of want.policies) {
    const h = policies.get(policyKey(p));
    if (!h || !samePolicy(h, p)) updates.push(policyUpdateLine(p));
  }
  const policyDeletes = [...policies.entries()].filter(([k]) => !wantedPolicies.has(k)).map(([, p]) => policyDeleteLine(p));
  const stateDeletes = [...states.entries()].filter(([k]) => !wantedStates.has(k)).map(([, s]) => stateDeleteLine(s));
  return [...adds, ...updates, ...policyDeletes, ...stateDeletes];
}

/** The line with its key replaced, for logs and errors: keys never leave the driver. */
export const redactSecrets = (line: string): string => line.replace(/(\baead \S+ )0x[0-9a-fA-F]+/g, "$1<secret>");
