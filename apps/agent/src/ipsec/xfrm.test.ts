import { describe, expect, it } from "vitest";
import {
  checkIpsecPlan,
  ESP_OVERHEAD,
  guardProblem,
  IPSEC_MARK,
  IPSEC_REQID,
  parseXfrmPolicies,
  parseXfrmStates,
  redactSecrets,
  renderGuard,
  spiFor,
  wantedIpsec,
  xfrmChanges,
  type XfrmPolicy,
  type XfrmState,
} from "./xfrm.ts";
import type { IpsecPlan } from "./types.ts";

// Recorded in Debian's 6.1 kernel (iproute2 6.1, nft 1.0.6) after KernelIpsec.sync(RECORDED_PLAN) in namespace d1,
// plus someone else's SA (reqid 5) and policy: `ip xfrm state list`, `ip xfrm policy list`, `nft list table ip vipmesh_ipsec`.
// (Its SPIs since rewritten to what spiFor gives now; test/ipsec-in-vm.ts checks the kernel takes those.)
const RECORDED_PLAN: IpsecPlan = {
  localAddr: "10.99.0.1",
  vnis: [4097, 4099],
  peers: ["10.99.0.2", "10.99.0.3"],
  keys: [
    { id: 1, secret: "11".repeat(36) },
    { id: 2, secret: "22".repeat(36) },
  ],
  txKeyId: 2,
};
const STATES = `src 10.99.0.1 dst 10.99.0.9
	proto esp spi 0x00000999 reqid 5 mode transport
	replay-window 0 
	aead rfc4106(gcm(aes)) 0x3333333333333333333333333333333333333333 64
	anti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
	sel src 0.0.0.0/0 dst 0.0.0.0/0 
src 10.99.0.3 dst 10.99.0.1
	proto esp spi 0x03630003 reqid 1986621549 mode transport
	replay-window 0 
	aead rfc4106(gcm(aes)) 0x222222222222222222222222222222222222222222222222222222222222222222222222 128
	anti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
	sel src 0.0.0.0/0 dst 0.0.0.0/0 
src 10.99.0.1 dst 10.99.0.3
	proto esp spi 0x03630001 reqid 1986621549 mode transport
	replay-window 0 
	aead rfc4106(gcm(aes)) 0x222222222222222222222222222222222222222222222222222222222222222222222222 128
	anti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
	sel src 0.0.0.0/0 dst 0.0.0.0/0 
src 10.99.0.3 dst 10.99.0.1
	proto esp spi 0x02630003 reqid 1986621549 mode transport
	replay-window 0 
	aead rfc4106(gcm(aes)) 0x111111111111111111111111111111111111111111111111111111111111111111111111 128
	anti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
	sel src 0.0.0.0/0 dst 0.0.0.0/0 
src 10.99.0.1 dst 10.99.0.3
	proto esp spi 0x02630001 reqid 1986621549 mode transport
	replay-window 0 
	aead rfc4106(gcm(aes)) 0x111111111111111111111111111111111111111111111111111111111111111111111111 128
	anti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
	sel src 0.0.0.0/0 dst 0.0.0.0/0 
src 10.99.0.2 dst 10.99.0.1
	proto esp spi 0x03630002 reqid 1986621549 mode transport
	replay-window 0 
	aead rfc4106(gcm(aes)) 0x222222222222222222222222222222222222222222222222222222222222222222222222 128
	anti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
	sel src 0.0.0.0/0 dst 0.0.0.0/0 
src 10.99.0.1 dst 10.99.0.2
	proto esp spi 0x03630001 reqid 1986621549 mode transport
	replay-window 0 
	aead rfc4106(gcm(aes)) 0x222222222222222222222222222222222222222222222222222222222222222222222222 128
	anti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
	sel src 0.0.0.0/0 dst 0.0.0.0/0 
src 10.99.0.2 dst 10.99.0.1
	proto esp spi 0x02630002 reqid 1986621549 mode transport
	replay-window 0 
	aead rfc4106(gcm(aes)) 0x111111111111111111111111111111111111111111111111111111111111111111111111 128
	anti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
	sel src 0.0.0.0/0 dst 0.0.0.0/0 
src 10.99.0.1 dst 10.99.0.2
	proto esp spi 0x02630001 reqid 1986621549 mode transport
	replay-window 0 
	aead rfc4106(gcm(aes)) 0x111111111111111111111111111111111111111111111111111111111111111111111111 128
	anti-replay context: seq 0x0, oseq 0x0, bitmap 0x00000000
	sel src 0.0.0.0/0 dst 0.0.0.0/0 
`;
const POLICIES = `src 10.99.0.1/32 dst 10.99.0.9/32 
	dir out priority 0 ptype main 
	tmpl src 10.99.0.1 dst 10.99.0.9
		proto esp reqid 5 mode transport
src 10.99.0.1/32 dst 10.99.0.3/32 proto udp dport 4789 
	dir out priority 0 ptype main 
	mark 0x10000000/0x10000000 
	tmpl src 10.99.0.1 dst 10.99.0.3
		proto esp spi 0x03630001 reqid 1986621549 mode transport
src 10.99.0.1/32 dst 10.99.0.2/32 proto udp dport 4789 
	dir out priority 0 ptype main 
	mark 0x10000000/0x10000000 
	tmpl src 10.99.0.1 dst 10.99.0.2
		proto esp spi 0x03630001 reqid 1986621549 mode transport
`;
const GUARD = `table ip vipmesh_ipsec {
	comment "vipmesh encrypted overlay guard 8df3865c061a"
	chain egress_mark {
		type route hook output priority mangle; policy accept;
		udp dport 4789 @th,96,24 { 0x1001, 0x1003 } meta mark set meta mark | 0x10000000
	}

	chain egress_guard {
		type filter hook postrouting priority filter; policy accept;
		udp dport 4789 @th,96,24 { 0x1001, 0x1003 } rt ipsec missing counter packets 0 bytes 0 drop
	}

	chain ingress_guard {
		type filter hook input priority filter; policy accept;
		udp dport 4789 @th,96,24 { 0x1001, 0x1003 } meta ipsec missing counter packets 0 bytes 0 drop
	}
}
`;

const K = (id: number) => ({ id, secret: String(id).padStart(2, "0").repeat(36) });
const plan = (o: Partial<IpsecPlan> = {}): IpsecPlan => ({ ...RECORDED_PLAN, ...o });

/** What the kernel would list after applying `lines` to `states`/`policies` (a tiny xfrm, for multi-step checks). */
function apply(lines: string[], states: XfrmState[], policies: XfrmPolicy[], want: ReturnType<typeof wantedIpsec>) {
  let s = [...states];
  let p = [...policies];
  const spiOf = (l: string) => parseInt(/ spi (0x[0-9a-f]+)/.exec(l)![1]!, 16);
  const addr = (l: string, k: string) => new RegExp(` ${k} (\\S+)`).exec(l)![1]!;
  for (const l of lines) {
    if (l.startsWith("xfrm state add")) s.push(want.states.find((w) => w.spi === spiOf(l) && w.dst === addr(l, "dst"))!);
    else if (l.startsWith("xfrm state delete")) s = s.filter((x) => !(x.spi === spiOf(l) && x.dst === addr(l, "dst")));
    else if (l.startsWith("xfrm policy update")) p = [...p.filter((x) => x.dst !== addr(l, "dst")), want.policies.find((w) => w.dst === addr(l, "dst"))!];
    else if (l.startsWith("xfrm policy delete")) p = p.filter((x) => x.dst !== addr(l, "dst"));
    else throw new Error(l);
  }
  return { states: s, policies: p };
}

describe("spiFor", () => {
  it("is the same for both ends, differs by sender and key, and stays within 2^24..2^31-1", () => {
    expect(spiFor(1, "10.0.0.1")).toBe(spiFor(1, "10.0.0.1"));
    expect(spiFor(1, "10.0.0.1")).not.toBe(spiFor(1, "10.0.0.2"));
    expect(spiFor(1, "10.0.0.1")).not.toBe(spiFor(2, "10.0.0.1"));
    for (const id of [1, 126, 127, 128, 0xffff]) {
      for (const addr of ["0.0.0.0", "10.0.0.1", "255.255.255.255"]) {
        expect(spiFor(id, addr)).toBeGreaterThanOrEqual(2 ** 24);
        expect(spiFor(id, addr)).toBeLessThan(2 ** 31);
      }
    }
  });
  it("never gives two SAs into one node the same SPI: 4000 peers in a /16, two keys, across the ID wrap", () => {
    const peers = Array.from({ length: 4000 }, (_, i) => `172.16.${i >> 8}.${i & 255}`);
    for (const [a, b] of [[1, 2], [126, 127], [127, 128], [0xffff, 1]] as const) {
      const spis = new Set(peers.flatMap((p) => [spiFor(a, p), spiFor(b, p)]));
      expect(spis.size).toBe(2 * peers.length);
    }
  });
  it("a plan whose peers share the low 24 bits of their addresses is refused, naming them", () => {
    const plan = { ...RECORDED_PLAN, peers: ["10.99.0.2", "11.99.0.2"] };
    expect(() => checkIpsecPlan(plan)).toThrow(/SPI 0x[0-9a-f]{8} into 10\.99\.0\.1 is both .*low 24 bits/);
  });
  it("is what the recorded kernel holds", () => {
    const spis = parseXfrmStates(STATES).filter((s) => s.reqid === IPSEC_REQID).map((s) => s.spi);
    expect(spis).toContain(spiFor(2, "10.99.0.1"));
    expect(spis).toContain(spiFor(1, "10.99.0.3"));
  });
});

describe("ESP_OVERHEAD", () => {
  it("covers ESP header, IV, worst padding, trailer and ICV, rounded up to 4", () => {
    const worst = 8 + 8 + 3 + 2 + 16;
    expect(ESP_OVERHEAD).toBeGreaterThanOrEqual(worst);
    expect(ESP_OVERHEAD % 4).toBe(0);
    expect(ESP_OVERHEAD - worst).toBeLessThan(4);
  });
});

describe("checkIpsecPlan", () => {
  it("accepts the recorded plan, and an empty one whatever its keys", () => {
    expect(() => checkIpsecPlan(RECORDED_PLAN)).not.toThrow();
    expect(() => checkIpsecPlan({ localAddr: "10.0.0.1", vnis: [], peers: [], keys: [], txKeyId: 0 })).not.toThrow();
  });
  it.each([
    ["txKeyId not a key", { txKeyId: 3 }, /txKeyId 3/],
    ["short secret", { keys: [{ id: 2, secret: "ab".repeat(20) }] }, /36 bytes/],
    ["non-hex secret", { keys: [{ id: 2, secret: "zz".repeat(36) }] }, /36 bytes/],
    ["duplicate key ID", { keys: [K(2), K(2)] }, /twice/],
    ["key ID 0", { keys: [K(0), K(2)] }, /key ID 0/],
    ["self as peer", { peers: ["10.99.0.1"] }, /own address/],
    ["not IPv4", { peers: ["10.99.0.2 ; reboot"] }, /not an IPv4/],
    ["bad VNI", { vnis: [0] }, /VNI 0/],
  ] as [string, Partial<IpsecPlan>, RegExp][])("refuses %s", (_, o, message) => {
    expect(() => checkIpsecPlan(plan(o))).toThrow(message);
  });
  it("accepts a 0x prefix and upper case in secrets, and writes them as the kernel lists them", () => {
    const p = plan({ keys: [{ id: 2, secret: `0x${"AB".repeat(36)}` }] });
    expect(() => checkIpsecPlan(p)).not.toThrow();
    expect(wantedIpsec(p).states[0]!.aead!.key).toBe("ab".repeat(36));
  });
});

describe("wantedIpsec", () => {
  it("per peer and key an SA each way, per peer one out policy with the tx key's SPI, and the guard", () => {
    const w = wantedIpsec(RECORDED_PLAN);
    expect(w.states).toHaveLength(2 * 2 * 2);
    expect(w.states.every((s) => s.proto === "esp" && s.mode === "transport" && s.reqid === IPSEC_REQID && s.aead?.name === "rfc4106(gcm(aes))" && s.aead.icvBits === 128)).toBe(true);
    expect(w.policies.map((p) => [p.dst, p.tmpl!.spi, p.mark])).toEqual([
      ["10.99.0.2/32", spiFor(2, "10.99.0.1"), { value: IPSEC_MARK, mask: IPSEC_MARK }],
      ["10.99.0.3/32", spiFor(2, "10.99.0.1"), { value: IPSEC_MARK, mask: IPSEC_MARK }],
    ]);
    expect(w.guard?.script).toContain("@th,96,24 { 4097, 4099 } meta ipsec missing counter drop");
  });
  it("wants nothing without VNIs", () => {
    expect(wantedIpsec(plan({ vnis: [] }))).toEqual({ states: [], policies: [], guard: undefined });
  });
  it("wants the guard alone without peers (a node alone with an encrypted network still drops injected plaintext)", () => {
    const w = wantedIpsec(plan({ peers: [], keys: [], txKeyId: 0 }));
    expect(w.states).toEqual([]);
    expect(w.policies).toEqual([]);
    expect(w.guard?.hash).toBe(renderGuard([4097, 4099]).hash);
  });
});

describe("parsing what ip xfrm lists", () => {
  it("reads the recorded SAs and policies, others' included", () => {
    const states = parseXfrmStates(STATES);
    expect(states).toHaveLength(9);
    expect(states[0]).toEqual({ src: "10.99.0.1", dst: "10.99.0.9", proto: "esp", spi: 0x999, reqid: 5, mode: "transport", aead: { name: "rfc4106(gcm(aes))", key: "33".repeat(20), icvBits: 64 } });
    const policies = parseXfrmPolicies(POLICIES);
    expect(policies).toHaveLength(3);
    expect(policies[0]!.tmpl).toEqual({ src: "10.99.0.1", dst: "10.99.0.9", proto: "esp", spi: 0, reqid: 5, mode: "transport" });
    expect(policies[2]).toEqual(wantedIpsec(RECORDED_PLAN).policies[0]);
  });
  it("reads `ip -s` details too", () => {
    const s = parseXfrmStates("src 10.99.0.2 dst 10.99.0.1\n\tproto esp spi 0x00002002(8194) reqid 77(0x0000004d) mode transport\n\taead rfc4106(gcm(aes)) 0x09 (288 bits) 128\n");
    expect(s[0]).toMatchObject({ spi: 0x2002, reqid: 77, aead: { key: "09", icvBits: 128 } });
  });
});

describe("xfrmChanges", () => {
  const have = () => ({ states: parseXfrmStates(STATES), policies: parseXfrmPolicies(POLICIES) });
  it("writes nothing on the recorded converged node", () => {
    expect(xfrmChanges(wantedIpsec(RECORDED_PLAN), have().states, have().policies)).toEqual([]);
  });
  it("writes everything, SAs before the policies that use them, on an empty node", () => {
    const lines = xfrmChanges(wantedIpsec(RECORDED_PLAN), [], []);
    expect(lines.map((l) => l.split(" ").slice(0, 3).join(" "))).toEqual([...Array(8).fill("xfrm state add"), "xfrm policy update", "xfrm policy update"]);
    expect(lines[0]).toBe(
      `xfrm state add src 10.99.0.1 dst 10.99.0.2 proto esp spi 0x${spiFor(1, "10.99.0.1").toString(16).padStart(8, "0")} reqid ${IPSEC_REQID} mode transport replay-window 0 aead rfc4106(gcm(aes)) 0x${"11".repeat(36)} 128`,
    );
    expect(lines[8]).toBe(
      `xfrm policy update dir out src 10.99.0.1/32 dst 10.99.0.2/32 proto udp dport 4789 mark 0x10000000 mask 0x10000000 tmpl src 10.99.0.1 dst 10.99.0.2 proto esp spi 0x${spiFor(2, "10.99.0.1").toString(16).padStart(8, "0")} reqid ${IPSEC_REQID} mode transport`,
    );
  });
  it("rotates in three steps, each touching only what it must", () => {
    const one = plan({ keys: [K(1)], txKeyId: 1 });
    let k = { states: [] as XfrmState[], policies: [] as XfrmPolicy[] };
    const step = (p: IpsecPlan) => {
      const w = wantedIpsec(p);
      const lines = xfrmChanges(w, k.states, k.policies);
      k = apply(lines, k.states, k.policies, w);
      expect(xfrmChanges(w, k.states, k.policies)).toEqual([]);
      return lines;
    };
    step(one);
    const add = step(plan({ keys: [K(1), K(3)], txKeyId: 1 }));
    expect(add).toHaveLength(4);
    expect(add.every((l) => l.startsWith("xfrm state add") && l.includes(`0x${"03".repeat(36)}`))).toBe(true);
    const swap = step(plan({ keys: [K(1), K(3)], txKeyId: 3 }));
    expect(swap).toHaveLength(2);
    expect(swap.every((l) => l.startsWith("xfrm policy update"))).toBe(true);
    expect(swap[0]).toContain(`spi 0x${spiFor(3, "10.99.0.1").toString(16).padStart(8, "0")}`);
    const drop = step(plan({ keys: [K(3)], txKeyId: 3 }));
    expect(drop).toHaveLength(4);
    expect(drop.every((l) => l.startsWith("xfrm state delete"))).toBe(true);
  });
  it("deletes a peer that left (its policy, then its SAs), and nothing of anyone else", () => {
    const lines = xfrmChanges(wantedIpsec(plan({ peers: ["10.99.0.2"] })), have().states, have().policies);
    expect(lines).toEqual([
      "xfrm policy delete dir out src 10.99.0.1/32 dst 10.99.0.3/32 proto udp dport 4789 mark 0x10000000 mask 0x10000000",
      ...parseXfrmStates(STATES)
        .filter((s) => s.reqid === IPSEC_REQID && (s.src === "10.99.0.3" || s.dst === "10.99.0.3"))
        .map((s) => `xfrm state delete src ${s.src} dst ${s.dst} proto esp spi 0x${s.spi.toString(16).padStart(8, "0")}`),
    ]);
  });
  it("deletes everything of ours for an empty plan, nothing of others'", () => {
    const lines = xfrmChanges(wantedIpsec(plan({ vnis: [] })), have().states, have().policies);
    expect(lines.filter((l) => l.startsWith("xfrm policy delete"))).toHaveLength(2);
    expect(lines.filter((l) => l.startsWith("xfrm state delete"))).toHaveLength(8);
    expect(lines.some((l) => l.includes("10.99.0.9"))).toBe(false);
  });
  it("replaces an SA whose key changed under the same SPI (delete, then add)", () => {
    const lines = xfrmChanges(wantedIpsec(plan({ keys: [RECORDED_PLAN.keys[0]!, { id: 2, secret: "55".repeat(36) }] })), have().states, have().policies);
    expect(lines).toHaveLength(8);
    expect(lines.filter((_, i) => i % 2 === 0).every((l) => l.startsWith("xfrm state delete"))).toBe(true);
    expect(lines.filter((_, i) => i % 2 === 1).every((l) => l.startsWith("xfrm state add") && l.includes("55".repeat(36)))).toBe(true);
  });
  it("follows a new local address: new SAs and policies first, the old ones deleted", () => {
    const lines = xfrmChanges(wantedIpsec(plan({ localAddr: "10.99.0.5" })), have().states, have().policies);
    const kinds = lines.map((l) => l.split(" ").slice(0, 3).join(" "));
    expect(kinds).toEqual([...Array(8).fill("xfrm state add"), ...Array(2).fill("xfrm policy update"), ...Array(2).fill("xfrm policy delete"), ...Array(8).fill("xfrm state delete")]);
  });
});

describe("the guard", () => {
  it("recognises the recorded table, and nothing else", () => {
    const { hash } = renderGuard([4099, 4097]);
    expect(guardProblem(GUARD, hash)).toBeUndefined();
    expect(guardProblem(GUARD, renderGuard([4097]).hash)).toMatch(/older guard/);
    expect(guardProblem(GUARD.replace(/\t\tudp dport 4789 .* rt ipsec missing .*\n/, ""), hash)).toMatch(/egress_guard .* lacks its rule/);
    expect(guardProblem(GUARD.replace(/\tchain ingress_guard \{[\s\S]*?\n\t\}\n/, ""), hash)).toMatch(/no chain ingress_guard/);
    expect(guardProblem(GUARD.replace(/\tcomment .*\n/, ""), hash)).toMatch(/no comment/);
  });
  it("replaces the table in one transaction", () => {
    const { script } = renderGuard([4097]);
    expect(script.split("\n").slice(0, 3)).toEqual(["add table ip vipmesh_ipsec", "delete table ip vipmesh_ipsec", "table ip vipmesh_ipsec {"]);
  });
});

it("redactSecrets keeps keys out of logs", () => {
  const line = xfrmChanges(wantedIpsec(RECORDED_PLAN), [], [])[0]!;
  expect(redactSecrets(line)).not.toContain("1111");
  expect(redactSecrets(line)).toContain("aead rfc4106(gcm(aes)) <secret> 128");
});
