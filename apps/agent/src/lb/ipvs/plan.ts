// The IPVS dataplane's plan of one sandbox, and the `ipvsadm` commands that
// turn what the kernel has into it. As libnetwork does it, one IPVS virtual
// service per VIP, keyed by the VIP's firewall mark (set by one nft map
// lookup, kernel.ts), masquerading (-m) to the VIP's ready tasks; unlike
// libnetwork, every change is one `ipvsadm --restore` batch computed against
// what the kernel holds (`ipvsadm -Sn` read back on a sandbox's first sync and
// after a failure; else what the last batch left, `IpvsChange.after`), never
// a rule or a netlink call per VIP one after another.
//
// Removal follows kube-proxy's graceful termination: a real server that
// leaves is first given weight 0 (no new connections; established ones go
// on), and deleted on a later sync, once it has no connections left or the
// grace period since it was quiesced has passed. A virtual service that leaves goes at once (its
// VIP is gone from DNS and from the mark map: nothing new can reach it).

import type { LbPlan } from "@vipmesh/core";

export interface IpvsDest {
  ip: string;
  weight: number;
}

export interface IpvsService {
  fwmark: number;
  scheduler: string;
  /** Client-IP persistence in seconds (client-IP affinity); absent: none. */
  persistentS?: number;
  dests: IpvsDest[];
}

/** Virtual services by mark, real servers by address: what `ipvsadm -Sn` says, or a plan. */
export interface IpvsState {
  services: IpvsService[];
}

/**
 * Connections that still need their real server, by its address (a task's
 * address is a real server of one mark only: its service's VIP on that
 * network). From `ipvsadm -Lnc`: TCP and SCTP entries in any state but
 * TIME_WAIT and CLOSE. That is not `-Ln`'s ActiveConn, which counts
 * ESTABLISHED only: a connection still in its handshake is "inactive" there,
 * and deleting its real server then (expire_nodest_conn drops the entry at its
 * next packet) leaves the client's established connection sending into
 * nothing until it times out. UDP entries do not hold a drain: a datagram
 * after the deletion is balanced anew, as kube-proxy does for UDP.
 */
export type DestConnections = ReadonlyMap<string, number>;

const byIp = (a: IpvsDest, b: IpvsDest) => {
  const n = (ip: string) => ip.split(".").reduce((acc, o) => acc * 256 + Number(o), 0);
  return n(a.ip) - n(b.ip);
};

export const canonicalIpvsState = (s: IpvsState): IpvsState => ({
  services: [...s.services].sort((a, b) => a.fwmark - b.fwmark).map((v) => ({ ...v, dests: [...v.dests].sort(byIp) })),
});

/**
 * The state a sandbox's LB plan asks for: a virtual service per VIP that has
 * a mark, with the service's scheduler. No scheduler asked for ("random", the
 * default: the manager refuses an explicit random on IPVS nodes) is
 * round-robin; round-robin becomes weighted when the weights differ (rr
 * ignores them, and weights are meant to count).
 */
export function ipvsStateFor(plan: LbPlan): IpvsState {
  const services: IpvsService[] = [];
  for (const s of plan.services) {
    if (!s.fwmark) continue;
    const weighted = s.backends.some((b) => b.weight !== s.backends[0]!.weight);
    const rr = s.scheduler === "random" || s.scheduler === "rr";
    services.push({
      fwmark: s.fwmark,
      scheduler: rr ? (weighted ? "wrr" : "rr") : s.scheduler,
      ...(s.affinityTimeoutS ? { persistentS: s.affinityTimeoutS } : {}),
      dests: s.backends.map((b) => ({ ip: b.ip, weight: b.weight })),
    });
  }
  return canonicalIpvsState({ services });
}

/** Reads `ipvsadm -Sn` (fwmark services only: nothing else is vipmesh's in a sandbox). */
export function parseIpvsSave(text: string): IpvsState {
  const services = new Map<number, IpvsService>();
  for (const line of text.split("\n")) {
    const svc = /^-A -f (\d+) -s (\S+)(?: -p (\d+))?/.exec(line);
    if (svc) {
      services.set(Number(svc[1]), { fwmark: Number(svc[1]), scheduler: svc[2]!, ...(svc[3] ? { persistentS: Number(svc[3]) } : {}), dests: [] });
      continue;
    }
    const dest = /^-a -f (\d+) -r ([\d.]+)(?::\d+)? -m -w (\d+)/.exec(line);
    if (dest) services.get(Number(dest[1]))?.dests.push({ ip: dest[2]!, weight: Number(dest[3]) });
  }
  return canonicalIpvsState({ services: [...services.values()] });
}

/** Reads `ipvsadm -Lnc`: connections that still need their real server, per real-server address. */
export function parseIpvsConnections(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    // pro expire state source virtual destination
    const c = /^(TCP|SCTP)\s+\S+\s+(\S+)\s+\S+\s+\S+\s+([\d.]+):\d+\s*$/.exec(line);
    if (!c || c[2] === "TIME_WAIT" || c[2] === "CLOSE") continue;
    out.set(c[3]!, (out.get(c[3]!) ?? 0) + 1);
  }
  return out;
}

const serviceArgs = (s: IpvsService) => `-f ${s.fwmark} -s ${s.scheduler}${s.persistentS ? ` -p ${s.persistentS}` : ""}`;
const destLine = (op: "-a" | "-e", mark: number, d: IpvsDest) => `${op} -f ${mark} -r ${d.ip}:0 -m -w ${d.weight}`;

export interface IpvsChange {
  /** `ipvsadm --restore` input, one command a line; "" when nothing differs. */
  commands: string;
  /** Real servers left at weight 0 for their connections to end ("mark ip"): call again to delete them. */
  draining: string[];
  /** What the kernel holds once `commands` ran: the next sync's `current`, without reading it back. */
  after: IpvsState;
}

/** Real servers ("mark ip") of services still wanted that are not wanted any more: only their connections count for a change. */
export function leavingDests(current: IpvsState, wanted: IpvsState): string[] {
  const want = new Map(wanted.services.map((s) => [s.fwmark, new Set(s.dests.map((d) => d.ip))]));
  return current.services.flatMap((s) => {
    const ips = want.get(s.fwmark);
    return ips ? s.dests.filter((d) => !ips.has(d.ip)).map((d) => `${s.fwmark} ${d.ip}`) : [];
  });
}

/**
 * Commands from `current` (the kernel's) to `wanted`. A real server that is no
 * longer wanted is quiesced, then deleted once `connections` says it has none
 * or `expired(key)` says its grace period ended.
 */
export function ipvsChanges(current: IpvsState, wanted: IpvsState, connections: DestConnections, expired: (key: string) => boolean): IpvsChange {
  const lines: string[] = [];
  const draining: string[] = [];
  const after: IpvsService[] = [];
  const have = new Map(current.services.map((s) => [s.fwmark, s]));
  const want = new Map(wanted.services.map((s) => [s.fwmark, s]));
  for (const s of current.services) if (!want.has(s.fwmark)) lines.push(`-D -f ${s.fwmark}`);
  for (const w of wanted.services) {
    const h = have.get(w.fwmark);
    if (!h) lines.push(`-A ${serviceArgs(w)}`);
    else if (h.scheduler !== w.scheduler || h.persistentS !== w.persistentS) lines.push(`-E ${serviceArgs(w)}`);
    const old = new Map((h?.dests ?? []).map((d) => [d.ip, d]));
    const kept = [...w.dests];
    for (const d of w.dests) {
      const o = old.get(d.ip);
      if (!o) lines.push(destLine("-a", w.fwmark, d));
      else if (o.weight !== d.weight) lines.push(destLine("-e", w.fwmark, d));
      old.delete(d.ip);
    }
    for (const o of old.values()) {
      const key = `${w.fwmark} ${o.ip}`;
      // deleted only once quiesced: connections read while it still had weight could be joined, before the
      // delete lands, by one it was just given, which the delete would cut (expire_nodest_conn)
      if (o.weight === 0 && ((connections.get(o.ip) ?? 0) === 0 || expired(key))) lines.push(`-d -f ${w.fwmark} -r ${o.ip}:0`);
      else {
        if (o.weight !== 0) lines.push(destLine("-e", w.fwmark, { ip: o.ip, weight: 0 }));
        draining.push(key);
        kept.push({ ip: o.ip, weight: 0 });
      }
    }
    after.push({ ...w, dests: kept });
  }
  return { commands: lines.length > 0 ? `${lines.join("\n")}\n` : "", draining, after: canonicalIpvsState({ services: after }) };
}
