// Runs INSIDE the kernel VM (ipsec.vm.test.ts boots it): encrypted overlays
// against Debian's real xfrm/ESP (this machine's kernel has no ESP). Two node
// namespaces and an outsider on an underlay bridge; each node has the real
// overlay (KernelOverlay) for an encrypted VNI and a plain one, an endpoint
// namespace on each, and busybox httpd in node2's endpoints. tcpdump watches
// node1's underlay port. Prints one line per check and exits non-zero at the
// first that fails.

import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { OVERLAY_KEY_BYTES, type OverlayKey } from "@vipmesh/core";
import { bridgedNamespaces } from "@vipmesh/kernel-vm/guest";
import { REQUEST_LOOP } from "@vipmesh/testing";
import { ESP_OVERHEAD, IPSEC_REQID, IPSEC_TABLE, parseXfrmPolicies, parseXfrmStates, spiFor } from "../src/ipsec/xfrm.ts";
import { KernelIpsec } from "../src/ipsec/kernel.ts";
import { KernelOverlay } from "../src/overlay/kernel.ts";
import { OVERLAY_MTU, type OverlayPlan } from "../src/overlay/types.ts";
import type { IpsecPlan } from "../src/ipsec/types.ts";

const started = Date.now();
const sh = (...cmd: string[]) => execFileSync(cmd[0]!, cmd.slice(1), { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
const inNs = (ns: string, ...cmd: string[]) => sh("ip", "netns", "exec", ns, ...cmd);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function check(ok: boolean, what: string, detail = ""): void {
  console.log(`${ok ? "ok" : "FAILED"} ${what}${ok || !detail ? "" : `: ${detail}`}`);
  if (!ok) process.exit(1);
}
const tryRun = (f: () => string): { ok: boolean; out: string } => {
  try {
    return { ok: true, out: f() };
  } catch (e) {
    return { ok: false, out: String((e as { stderr?: string }).stderr ?? e) };
  }
};

// ---- the network
const N1 = { ns: "vmn1", addr: "10.99.0.1" };
const N2 = { ns: "vmn2", addr: "10.99.0.2" };
const OUTSIDER = { ns: "vmx", addr: "10.99.0.3" };
const ENC = 4097;
const PLAIN = 4098;
/** Endpoints: e<node><a = encrypted VNI, b = plain VNI>. */
const EP = {
  e1a: { node: N1, vni: ENC, ip: "10.50.1.1", mac: "02:00:0a:32:01:01" },
  e2a: { node: N2, vni: ENC, ip: "10.50.1.2", mac: "02:00:0a:32:01:02" },
  e1b: { node: N1, vni: PLAIN, ip: "10.50.2.1", mac: "02:00:0a:32:02:01" },
  e2b: { node: N2, vni: PLAIN, ip: "10.50.2.2", mac: "02:00:0a:32:02:02" },
};
type EpName = keyof typeof EP;
const UNDERLAY_PORT = `h${N1.ns}`; // node1's veth on the underlay bridge, seen from the VM's root namespace
const BIG = 300_000;

bridgedNamespaces([N1, N2, OUTSIDER].map((n) => ({ name: n.ns, addr: `${n.addr}/24` })));

const overlayPlan = (self: typeof N1): OverlayPlan => ({
  localAddr: self.addr,
  networks: [ENC, PLAIN].map((vni) => ({
    networkId: vni === ENC ? "secret" : "plain",
    vni,
    remotes: Object.values(EP)
      .filter((e) => e.vni === vni && e.node !== self)
      .map((e) => ({ ip: e.ip, mac: e.mac, nodeAddr: e.node.addr })),
  })),
});

const key = (id: number): OverlayKey => ({ id, secret: randomBytes(OVERLAY_KEY_BYTES).toString("hex") });
const K1 = key(1);
const K2 = key(2);
const ipsecPlan = (self: typeof N1, keys: OverlayKey[], txKeyId: number, vnis = [ENC]): IpsecPlan => ({
  localAddr: self.addr,
  vnis,
  peers: [self === N1 ? N2.addr : N1.addr],
  keys,
  txKeyId,
});
let writes = 0;
const counting = (ns: string) => new KernelIpsec({ netns: ns, trustMs: 0, onWrite: () => writes++, onNftWrite: () => writes++ });
const ipsec = { [N1.ns]: counting(N1.ns), [N2.ns]: counting(N2.ns) };
const syncBoth = (keys: OverlayKey[], txKeyId: number) => Promise.all([N1, N2].map((n) => ipsec[n.ns]!.sync(ipsecPlan(n, keys, txKeyId))));

// the guard first, then the VXLAN devices: no packet of the encrypted VNI is ever sent before the guard is there
await syncBoth([K1], 1);
const guard = inNs(N1.ns, "nft", "list", "table", "ip", IPSEC_TABLE);
check(/@th,96,24 0x1001 rt ipsec missing/.test(guard) && /meta ipsec missing/.test(guard), "the guard table is loaded before the overlay exists", guard);

for (const n of [N1, N2]) await new KernelOverlay({ netns: n.ns, trustMs: 0 }).sync(overlayPlan(n));
for (const [name, e] of Object.entries(EP)) {
  sh("ip", "netns", "add", name);
  inNs(name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1");
  inNs(name, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1");
  sh("ip", "-n", e.node.ns, "link", "add", `v${name}`, "type", "veth", "peer", "name", "eth0", "netns", name);
  // no IPv6 link-local address on the host end: nothing but the test's own traffic reaches the endpoints
  sh("ip", "-n", e.node.ns, "link", "set", `v${name}`, "addrgenmode", "none");
  sh("ip", "-n", e.node.ns, "link", "set", `v${name}`, "master", `vmbr${e.vni}`, "mtu", String(OVERLAY_MTU), "up");
  const mtu = e.vni === ENC ? OVERLAY_MTU - ESP_OVERHEAD : OVERLAY_MTU;
  sh("ip", "-n", name, "link", "set", "eth0", "address", e.mac, "mtu", String(mtu), "up");
  sh("ip", "-n", name, "addr", "add", `${e.ip}/24`, "dev", "eth0");
  sh("ip", "-n", name, "link", "set", "lo", "up");
}
for (const name of ["e2a", "e2b"] as const) {
  mkdirSync(`/run/www/${name}`, { recursive: true });
  writeFileSync(`/run/www/${name}/index.html`, `${name}\n`);
  writeFileSync(`/run/www/${name}/big.bin`, randomBytes(BIG));
  inNs(name, "busybox", "httpd", "-p", "80", "-h", `/run/www/${name}`);
}
const get = (from: EpName, to: EpName, path = "/", maxTime = 5) => inNs(from, "curl", "-sf", "--max-time", String(maxTime), `http://${EP[to].ip}${path}`);

// ---- captures: tcpdump on node1's underlay port, read back from the pcap file
interface Packet {
  src: string;
  dst: string;
  proto: number;
  /** IP total length. */
  length: number;
  fragment: boolean;
  vni?: number;
  spi?: number;
}
function readPcap(file: string): Packet[] {
  const b = readFileSync(file);
  const out: Packet[] = [];
  const le = b.readUInt32LE(0) === 0xa1b2c3d4;
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  for (let o = 24; o + 16 <= b.length; ) {
    const len = u32(o + 8);
    const f = b.subarray(o + 16, o + 16 + len);
    o += 16 + len;
    if (f.length < 34 || f.readUInt16BE(12) !== 0x0800) continue;
    const ip = f.subarray(14);
    const ihl = (ip[0]! & 15) * 4;
    const frag = ip.readUInt16BE(6);
    const p: Packet = {
      src: [...ip.subarray(12, 16)].join("."),
      dst: [...ip.subarray(16, 20)].join("."),
      proto: ip[9]!,
      length: ip.readUInt16BE(2),
      fragment: (frag & 0x3fff) !== 0,
    };
    const l4 = ip.subarray(ihl);
    if ((frag & 0x1fff) === 0) {
      if (p.proto === 17 && l4.length >= 16 && l4.readUInt16BE(2) === 4789) p.vni = l4.readUInt32BE(12) >>> 8;
      if (p.proto === 50 && l4.length >= 4) p.spi = l4.readUInt32BE(0);
    }
    out.push(p);
  }
  return out;
}
let captures = 0;
/**
 * What crossed node1's underlay port while `during` ran. tcpdump lags under
 * emulation and drops what its buffer still holds when it is stopped: it is
 * stopped only once the file has stopped growing, and a capture that lost a
 * packet fails (a check that nothing was sent must have seen everything).
 */
async function captured<T>(during: () => Promise<T> | T): Promise<{ packets: Packet[]; result: T }> {
  const file = `/tmp/ipsec-${++captures}.pcap`;
  const td = spawn("tcpdump", ["-i", UNDERLAY_PORT, "-nn", "-U", "-B", "8192", "-w", file], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  await new Promise<void>((resolve, reject) => {
    td.stderr!.on("data", (d: Buffer) => {
      err += d;
      if (err.includes("listening on")) resolve();
    });
    td.on("close", (code) => reject(new Error(`tcpdump ended (${code}): ${err}`)));
  });
  try {
    const result = await during();
    for (let size = -1, same = 0; same < 3; await sleep(300)) {
      const now = statSync(file).size;
      same = now === size ? same + 1 : 0;
      size = now;
    }
    await stop(td);
    const dropped = /(\d+) packets? dropped by kernel/.exec(err)?.[1];
    if (dropped !== "0") throw new Error(`tcpdump lost packets: ${err}`);
    return { result, packets: readPcap(file) };
  } finally {
    await stop(td);
  }
}
function stop(p: ChildProcess, signal: NodeJS.Signals = "SIGINT"): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    p.on("close", () => resolve());
    p.kill(signal);
  });
}
const plaintextOf = (ps: Packet[], vni: number) => ps.filter((p) => p.proto === 17 && p.vni === vni);
const espSpis = (ps: Packet[], src: string, dst: string) => [...new Set(ps.filter((p) => p.proto === 50 && p.src === src && p.dst === dst && p.spi !== undefined).map((p) => p.spi!))];
const hex = (n: number) => `0x${n.toString(16)}`;

// ---- 1. traffic over the encrypted VNI is ESP, the plain VNI's is plain VXLAN
{
  const { result, packets } = await captured(() => ({ small: get("e1a", "e2a"), big: Number(inNs("e1a", "curl", "-sf", "--max-time", "20", "-o", "/dev/null", "-w", "%{size_download}", `http://${EP.e2a.ip}/big.bin`)), plain: get("e1b", "e2b") }));
  check(result.small.trim() === "e2a" && result.big === BIG, "HTTP over the encrypted VNI works (index and a 300 kB file)", JSON.stringify(result));
  check(result.plain.trim() === "e2b", "HTTP over the plain VNI works");
  const esp12 = espSpis(packets, N1.addr, N2.addr);
  const esp21 = espSpis(packets, N2.addr, N1.addr);
  check(
    esp12.length === 1 && esp12[0] === spiFor(1, N1.addr) && esp21.length === 1 && esp21[0] === spiFor(1, N2.addr),
    "the capture shows ESP both ways, with the SPIs both ends derive for key 1",
    `${esp12.map(hex)} / ${esp21.map(hex)}`,
  );
  check(plaintextOf(packets, ENC).length === 0, "and not one plaintext VXLAN packet of the encrypted VNI", JSON.stringify(plaintextOf(packets, ENC)[0]));
  const summary = (ps: Packet[]) => {
    const n = new Map<string, number>();
    for (const p of ps) n.set(`${p.src}>${p.dst} proto ${p.proto} vni ${p.vni} spi ${p.spi}`, (n.get(`${p.src}>${p.dst} proto ${p.proto} vni ${p.vni} spi ${p.spi}`) ?? 0) + 1);
    return JSON.stringify([...n]);
  };
  check(plaintextOf(packets, PLAIN).length > 0, "while the plain VNI's traffic crosses as plain VXLAN", summary(packets));
  const esp = packets.filter((p) => p.proto === 50);
  const longest = Math.max(...esp.map((p) => p.length));
  check(
    esp.every((p) => !p.fragment) && longest <= 1500,
    `with the endpoints' MTU at ${OVERLAY_MTU} - ESP_OVERHEAD (${ESP_OVERHEAD}), ESP packets fit a 1500-byte underlay unfragmented (longest ${longest})`,
    `${esp.filter((p) => p.fragment).length} fragments`,
  );
}

// ---- 2. plaintext VXLAN of the encrypted VNI, injected from the underlay, is dropped
{
  const counter = (ns: string, chain: string) => Number(/counter packets (\d+)/.exec(inNs(ns, "nft", "list", "chain", "ip", IPSEC_TABLE, chain))?.[1]);
  const rx = (ns: string, dev: string) => (JSON.parse(sh("ip", "-n", ns, "-j", "-s", "link", "show", dev)) as { stats64: { rx: { packets: number } } }[])[0]!.stats64.rx.packets;
  const before = { guard: counter(N2.ns, "ingress_guard"), enc: rx(N2.ns, `vmvx${ENC}`), plain: rx(N2.ns, `vmvx${PLAIN}`), e2a: rx("e2a", "eth0"), e2b: rx("e2b", "eth0") };
  // an ICMP echo to the endpoint, in VXLAN, sent with a plain UDP socket by a host on the underlay
  const inject = `
    const dgram = require("node:dgram");
    const [vni, mac, dst, src] = process.argv.slice(1);
    const sum = (b) => { let s = 0; for (let i = 0; i < b.length; i += 2) s += (b[i] << 8) + (b[i + 1] ?? 0); while (s > 0xffff) s = (s & 0xffff) + (s >>> 16); return ~s & 0xffff; };
    const icmp = Buffer.from([8, 0, 0, 0, 0x12, 0x34, 0, 1, ...Buffer.from("vipmesh-injected")]);
    icmp.writeUInt16BE(sum(icmp), 2);
    const ip = Buffer.alloc(20);
    ip[0] = 0x45; ip.writeUInt16BE(20 + icmp.length, 2); ip[8] = 64; ip[9] = 1;
    Buffer.from(src.split(".").map(Number)).copy(ip, 12); Buffer.from(dst.split(".").map(Number)).copy(ip, 16);
    ip.writeUInt16BE(sum(ip), 10);
    const eth = Buffer.concat([Buffer.from(mac.split(":").map((h) => parseInt(h, 16))), Buffer.from([2, 0, 0, 0, 0, 0x99, 8, 0])]);
    const vx = Buffer.from([8, 0, 0, 0, (vni >> 16) & 255, (vni >> 8) & 255, vni & 255, 0]);
    const s = dgram.createSocket("udp4");
    let n = 0;
    const next = () => (n++ < 5 ? s.send(Buffer.concat([vx, eth, ip, icmp]), 4789, "${N2.addr}", () => setTimeout(next, 20)) : s.close());
    next();`;
  inNs(OUTSIDER.ns, "node", "-e", inject, String(ENC), EP.e2a.mac, EP.e2a.ip, "10.50.1.99");
  inNs(OUTSIDER.ns, "node", "-e", inject, String(PLAIN), EP.e2b.mac, EP.e2b.ip, "10.50.2.99");
  await sleep(500);
  const after = { guard: counter(N2.ns, "ingress_guard"), enc: rx(N2.ns, `vmvx${ENC}`), plain: rx(N2.ns, `vmvx${PLAIN}`), e2a: rx("e2a", "eth0"), e2b: rx("e2b", "eth0") };
  const seen = JSON.stringify({ before, after });
  check(after.plain - before.plain === 5 && after.e2b - before.e2b >= 5, "control: 5 injected packets of the plain VNI reach its VXLAN device and endpoint", seen);
  check(after.guard - before.guard === 5, "5 injected plaintext packets of the encrypted VNI: the ingress guard's counter goes up by 5", seen);
  check(after.enc === before.enc && after.e2a === before.e2a, "and none of them reaches the encrypted VNI's VXLAN device or its endpoint", seen);
}

// ---- 3. without SAs, or without policies, nothing of the encrypted VNI leaves in plaintext
{
  const egressDrops = () => Number(/counter packets (\d+)/.exec(inNs(N1.ns, "nft", "list", "chain", "ip", IPSEC_TABLE, "egress_guard"))?.[1]);
  sh("ip", "-n", N1.ns, "xfrm", "state", "deleteall", "reqid", String(IPSEC_REQID));
  check(parseXfrmStates(sh("ip", "-n", N1.ns, "xfrm", "state", "list")).length === 0, "node1's SAs deleted by hand");
  const noSa = await captured(() => tryRun(() => get("e1a", "e2a", "/", 3)));
  check(!noSa.result.ok, "a request over the encrypted VNI now fails");
  check(
    plaintextOf(noSa.packets, ENC).length === 0 && espSpis(noSa.packets, N1.addr, N2.addr).length === 0,
    "and node1 sends nothing of it: no plaintext VXLAN, no ESP (the policy has no SA: xfrm drops)",
    JSON.stringify(noSa.packets.slice(0, 3)),
  );
  sh("ip", "-n", N1.ns, "xfrm", "policy", "deleteall", "dir", "out");
  check(parseXfrmPolicies(sh("ip", "-n", N1.ns, "xfrm", "policy", "list")).length === 0, "node1's policies deleted by hand too");
  const drops = egressDrops();
  const noPolicy = await captured(() => tryRun(() => get("e1a", "e2a", "/", 3)));
  check(!noPolicy.result.ok && plaintextOf(noPolicy.packets, ENC).length === 0, "still nothing in plaintext without a policy", JSON.stringify(plaintextOf(noPolicy.packets, ENC)[0]));
  check(egressDrops() > drops, `the egress guard dropped them (rt ipsec missing: ${egressDrops() - drops} packets)`);
  await ipsec[N1.ns]!.sync(ipsecPlan(N1, [K1], 1));
  check(get("e1a", "e2a").trim() === "e2a", "a sync puts the SAs and policy back, and the request works again");
}

// ---- 4. a key rotation under a steady request loop loses no request
{
  const loop = spawn("ip", ["netns", "exec", "e1a", "node", REQUEST_LOOP, EP.e2a.ip, "80", "2000"], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  loop.stdout!.on("data", (d: Buffer) => (out += d));
  while (!out.includes("started")) await sleep(100);
  await sleep(1500);
  await syncBoth([K1, K2], 1); // 1. everyone can receive with the new key
  const step1 = parseXfrmStates(sh("ip", "-n", N1.ns, "xfrm", "state", "list")).filter((s) => s.reqid === IPSEC_REQID).length;
  check(step1 === 4, "rotation step 1: the new key's SAs are added (4 on node1), sending key unchanged", String(step1));
  await sleep(1500);
  await ipsec[N1.ns]!.sync(ipsecPlan(N1, [K1, K2], 2)); // 2. everyone sends with it, one node after the other
  await sleep(500);
  await ipsec[N2.ns]!.sync(ipsecPlan(N2, [K1, K2], 2));
  const after2 = await captured(() => sleep(1500));
  const s12 = espSpis(after2.packets, N1.addr, N2.addr);
  const s21 = espSpis(after2.packets, N2.addr, N1.addr);
  check(
    s12.length === 1 && s12[0] === spiFor(2, N1.addr) && s21.length === 1 && s21[0] === spiFor(2, N2.addr),
    "rotation step 2: the capture shows only the new key's SPIs, both ways",
    `${s12.map(hex)} / ${s21.map(hex)}`,
  );
  await syncBoth([K2], 2); // 3. the old key goes
  await sleep(1500);
  await stop(loop, "SIGTERM");
  const result = JSON.parse(out.trim().split("\n").pop()!) as { ok: number; failed: number; errors: string[] };
  check(result.failed === 0 && result.ok >= 10, `no request lost during the rotation (${result.ok} requests, each on a new connection)`, JSON.stringify(result));
  const old = [N1, N2].flatMap((n) => parseXfrmStates(sh("ip", "-n", n.ns, "xfrm", "state", "list")).filter((s) => s.spi === spiFor(1, N1.addr) || s.spi === spiFor(1, N2.addr)));
  check(old.length === 0, "rotation step 3: the old key's SAs are gone on both nodes", JSON.stringify(old.map((s) => hex(s.spi))));
  check(get("e1a", "e2a").trim() === "e2a", "and traffic goes on with the new key");
}

// ---- 5. a converged node writes nothing; an empty plan leaves nothing of ours
{
  writes = 0;
  await syncBoth([K2], 2);
  await new KernelIpsec({ netns: N1.ns, trustMs: 0, onWrite: () => writes++, onNftWrite: () => writes++ }).sync(ipsecPlan(N1, [K2], 2));
  check(writes === 0, "syncing the same plan again (and from a new driver, as after an agent restart) writes nothing", String(writes));
  await ipsec[N1.ns]!.sync({ ...ipsecPlan(N1, [K2], 2), peers: [] });
  const alone = { states: parseXfrmStates(sh("ip", "-n", N1.ns, "xfrm", "state", "list")), guard: tryRun(() => inNs(N1.ns, "nft", "list", "table", "ip", IPSEC_TABLE)) };
  check(alone.states.length === 0 && alone.guard.ok, "a plan without peers removes SAs and policies but keeps the guard", JSON.stringify(alone));
  await ipsec[N1.ns]!.sync(ipsecPlan(N1, [K2], 2, []));
  const states = parseXfrmStates(sh("ip", "-n", N1.ns, "xfrm", "state", "list"));
  const policies = parseXfrmPolicies(sh("ip", "-n", N1.ns, "xfrm", "policy", "list"));
  const table = tryRun(() => inNs(N1.ns, "nft", "list", "table", "ip", IPSEC_TABLE));
  check(states.length === 0 && policies.length === 0 && !table.ok, "an empty plan removes every SA, policy and the guard table", JSON.stringify({ states, policies, table }));
  writes = 0;
  await ipsec[N1.ns]!.sync({ localAddr: N1.addr, vnis: [], peers: [], keys: [], txKeyId: 0 });
  check(writes === 0, "and an empty plan again writes nothing");
}

console.log(`ALL OK (${((Date.now() - started) / 1000).toFixed(0)} s inside the VM)`);
process.exit(0);
