// Checks and canonical forms of the kernel plans. Every string of a plan ends
// up as a word of an `ip -batch` line, so a plan is checked before any line
// is made from it: a stray space or newline must never become a command.

import { parseCidr, parseIpv4 } from "@vipmesh/core";
import { GATEWAY_IFNAME, type SandboxInterface, type SandboxPlan, type SandboxState } from "../sandbox/types.ts";
import { OVERLAY_MTU, type OverlayPlan, type RemoteEndpoint } from "../overlay/types.ts";

export class KernelPlanError extends Error {
  override name = "KernelPlanError";
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const ID = /^[A-Za-z0-9._-]{1,128}$/;
/** Namespace names are files in /run/netns. */
const NETNS = /^[A-Za-z0-9._-]{1,200}$/;
const IFNAME = /^[A-Za-z0-9._-]{1,15}$/;
const MAX_VNI = 0xffffff;
/** names.hostVeth leaves two characters for the interface index. */
const MAX_INTERFACES = 100;

export const isIpv4 = (s: string): boolean => parseIpv4(s) !== undefined;
export const isNetnsName = (s: string): boolean => NETNS.test(s);

function check(ok: boolean, what: string): void {
  if (!ok) throw new KernelPlanError(what);
}

function checkMac(mac: string, where: string): void {
  check(MAC.test(mac), `${where}: "${mac}" is not a MAC address (lowercase, colon-separated)`);
  check(mac !== "00:00:00:00:00:00" && (parseInt(mac.slice(0, 2), 16) & 1) === 0, `${where}: ${mac} is not a unicast MAC address`);
}

export const checkVni = (vni: number, where: string) =>
  check(Number.isInteger(vni) && vni >= 1 && vni <= MAX_VNI, `${where}: VNI ${vni} is not in 1-${MAX_VNI}`);

/** Numeric order of dotted quads; anything else after them, by text. */
export function compareIpv4(a: string, b: string): number {
  const x = parseIpv4(a);
  const y = parseIpv4(b);
  if (x !== undefined && y !== undefined) return x - y;
  if (x !== undefined) return -1;
  if (y !== undefined) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

const compareRemotes = (a: RemoteEndpoint, b: RemoteEndpoint) => compareIpv4(a.ip, b.ip) || (a.mac < b.mac ? -1 : a.mac > b.mac ? 1 : 0);
/** eth2 before eth10. */
export const compareNames = (a: string, b: string) => a.localeCompare(b, "en", { numeric: true });

/** The same plan with lowercase MACs, networks by VNI and remotes by address: two equal plans are deep-equal. */
export function canonicalOverlayPlan(plan: OverlayPlan): OverlayPlan {
  return {
    localAddr: plan.localAddr,
    networks: plan.networks
      .map((n) => ({
        networkId: n.networkId,
        vni: n.vni,
        remotes: n.remotes.map((r) => ({ ip: r.ip, mac: r.mac.toLowerCase(), nodeAddr: r.nodeAddr })).sort(compareRemotes),
        ...(n.mtu !== undefined && n.mtu !== OVERLAY_MTU ? { mtu: n.mtu } : {}),
      }))
      .sort((a, b) => a.vni - b.vni),
  };
}

/** Throws KernelPlanError unless the plan can be programmed as it is: valid words, one network per VNI, one remote per address and MAC. */
export function checkOverlayPlan(plan: OverlayPlan): void {
  if (plan.networks.length > 0) check(isIpv4(plan.localAddr), `overlay plan: local address "${plan.localAddr}" is not an IPv4 address`);
  const vnis = new Set<number>();
  const ids = new Set<string>();
  for (const n of plan.networks) {
    const where = `overlay network ${n.networkId} (VNI ${n.vni})`;
    check(ID.test(n.networkId), `${where}: network ID must be 1-128 of [A-Za-z0-9._-]`);
    checkVni(n.vni, where);
    if (n.mtu !== undefined) check(Number.isInteger(n.mtu) && n.mtu >= 1280 && n.mtu <= OVERLAY_MTU, `${where}: MTU ${n.mtu} is not within 1280-${OVERLAY_MTU}`);
    check(!vnis.has(n.vni), `${where}: VNI ${n.vni} is planned twice`);
    check(!ids.has(n.networkId), `${where}: network ${n.networkId} is planned twice`);
    vnis.add(n.vni);
    ids.add(n.networkId);
    const ips = new Set<string>();
    const macs = new Set<string>();
    for (const r of n.remotes) {
      const mac = r.mac.toLowerCase();
      check(isIpv4(r.ip), `${where}: remote address "${r.ip}" is not an IPv4 address`);
      checkMac(mac, `${where}, remote ${r.ip}`);
      check(isIpv4(r.nodeAddr), `${where}, remote ${r.ip}: node address "${r.nodeAddr}" is not an IPv4 address`);
      check(!ips.has(r.ip), `${where}: remote ${r.ip} is planned twice`);
      check(!macs.has(mac), `${where}: remote MAC ${mac} is planned twice`);
      ips.add(r.ip);
      macs.add(mac);
    }
  }
}

export function checkSandboxPlan(plan: SandboxPlan): void {
  const where = `sandbox ${plan.name}`;
  check(NETNS.test(plan.name), `${where}: namespace name must be 1-200 of [A-Za-z0-9._-]`);
  check(ID.test(plan.taskId), `${where}: task ID must be 1-128 of [A-Za-z0-9._-]`);
  check(plan.interfaces.length <= MAX_INTERFACES, `${where}: at most ${MAX_INTERFACES} interfaces`);
  const ifnames = new Set<string>();
  for (const i of plan.interfaces) {
    check(IFNAME.test(i.ifname) && i.ifname !== "lo", `${where}: "${i.ifname}" is not a usable interface name`);
    check(!ifnames.has(i.ifname), `${where}: interface ${i.ifname} is planned twice`);
    ifnames.add(i.ifname);
    checkVni(i.vni, `${where}, ${i.ifname}`);
    check(parseCidr(i.addr, false) !== undefined, `${where}, ${i.ifname}: "${i.addr}" is not an IPv4 CIDR address`);
    checkMac(i.mac.toLowerCase(), `${where}, ${i.ifname}`);
  }
  const g = plan.gateway;
  if (g) {
    check(IFNAME.test(g.hostIfname), `${where}: gateway "${g.hostIfname}" is not a usable interface name`);
    check(!ifnames.has(GATEWAY_IFNAME), `${where}: ${GATEWAY_IFNAME} is the gateway link's; an overlay interface cannot have it`);
    for (const a of [g.hostAddr, g.addr]) check(parseCidr(a, false) !== undefined, `${where}, gateway: "${a}" is not an IPv4 CIDR address`);
  }
}

const canonicalInterface = (i: SandboxInterface): SandboxInterface => ({
  ifname: i.ifname,
  vni: i.vni,
  addr: i.addr,
  mac: i.mac.toLowerCase(),
  ...(i.mtu !== undefined && i.mtu !== OVERLAY_MTU ? { mtu: i.mtu } : {}),
});

/** What list() would say of a sandbox made from this plan: no hostname, interfaces by name. */
export function sandboxStateOf(plan: SandboxState): SandboxState {
  return {
    taskId: plan.taskId,
    name: plan.name,
    interfaces: plan.interfaces.map(canonicalInterface).sort((a, b) => compareNames(a.ifname, b.ifname)),
  };
}
