// The overlay a node needs, from its network view: every network it holds,
// and on each the endpoints that live on other nodes (local ones are reached
// through the bridge, with no entry).

import { addrOf, attachmentRefusal, type NetworkView, type ViewEndpoint, type ViewNetwork } from "@vipmesh/core";
import { canonicalOverlayPlan } from "../exec/canonical.ts";
import { ESP_OVERHEAD } from "../ipsec/xfrm.ts";
import { OVERLAY_MTU, type OverlayPlan, type RemoteEndpoint } from "./types.ts";

/** Encrypted networks' MTU: room for ESP inside the same underlay packet. */
const ENCRYPTED_OVERLAY_MTU = OVERLAY_MTU - ESP_OVERHEAD;

/** The MTU field of a network's VXLAN device and sandbox interfaces: none (OVERLAY_MTU) unless it is encrypted. */
export const networkMtu = (n: ViewNetwork): { mtu?: number } => (n.encrypted ? { mtu: ENCRYPTED_OVERLAY_MTU } : {});

/**
 * `cannotEncrypt`: why this node cannot carry encrypted networks now
 * (undefined: it can); such networks then get no tunnel at all. Encrypted
 * ones that it can carry get an MTU smaller by the ESP overhead.
 */
export function overlayPlanFor(view: NetworkView, localAddr: string, localNodeId: string, cannotEncrypt: string | undefined): OverlayPlan {
  const remotesByNetwork = new Map<string, ViewEndpoint[]>();
  for (const e of view.endpoints.values()) {
    if (e.nodeId === localNodeId || !e.nodeAddr) continue;
    const list = remotesByNetwork.get(e.networkId);
    if (list) list.push(e);
    else remotesByNetwork.set(e.networkId, [e]);
  }
  const networks = [...view.networks.values()]
    // no plaintext tunnel for a network that asked for encryption (the agent refuses its tasks too)
    .filter((n) => attachmentRefusal(n, cannotEncrypt) === undefined)
    .map((n) => ({
      networkId: n.id,
      vni: n.vni,
      remotes: remotesOf(remotesByNetwork.get(n.id) ?? []),
      ...networkMtu(n),
    }));
  return canonicalOverlayPlan({ localAddr, networks });
}

/**
 * One entry per address and per MAC: should two endpoints claim one (an old
 * task not yet gone, a new one given its address), the ready one wins, then
 * the first by key, so every node picks the same.
 */
function remotesOf(endpoints: ViewEndpoint[]): RemoteEndpoint[] {
  const sorted = [...endpoints].sort((a, b) => Number(b.ready) - Number(a.ready) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const ips = new Set<string>();
  const macs = new Set<string>();
  const out: RemoteEndpoint[] = [];
  for (const e of sorted) {
    const ip = addrOf(e.addr);
    const mac = e.mac.toLowerCase();
    if (ips.has(ip) || macs.has(mac)) continue;
    ips.add(ip);
    macs.add(mac);
    out.push({ ip, mac, nodeAddr: e.nodeAddr });
  }
  return out;
}

/**
 * Make before break: `next` with the remotes of `prev` it drops kept (on the
 * networks both hold, where no remote of `next` claims their address or MAC),
 * for the moment between the overlay's sync and the load balancers' — a VIP
 * must never send a connection to a remote the overlay no longer reaches.
 * `next` itself when it drops nothing.
 */
export function withDroppedRemotes(prev: OverlayPlan, next: OverlayPlan): OverlayPlan {
  let dropped = false;
  const networks = next.networks.map((n) => {
    const before = prev.networks.find((p) => p.networkId === n.networkId);
    const ips = new Set(n.remotes.map((r) => r.ip));
    const macs = new Set(n.remotes.map((r) => r.mac));
    const kept = (before?.remotes ?? []).filter((r) => !ips.has(r.ip) && !macs.has(r.mac));
    if (kept.length === 0) return n;
    dropped = true;
    return { ...n, remotes: [...n.remotes, ...kept] };
  });
  return dropped ? canonicalOverlayPlan({ ...next, networks }) : next;
}
