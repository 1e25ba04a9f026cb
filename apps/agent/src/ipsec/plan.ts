// What IPsec must carry for this node, from its network view.

import type { NetworkView, OverlayKeySet } from "@vipmesh/core";
import type { IpsecPlan } from "./types.ts";

/**
 * What IPsec must carry for this node: its encrypted networks' VNIs, and the
 * nodes that run their remote endpoints. Without keys the plan holds none
 * (the caller refuses those networks instead).
 */
export function ipsecPlanFor(view: NetworkView, localAddr: string, localNodeId: string, keys: OverlayKeySet | undefined): IpsecPlan {
  const vnis = new Set<number>();
  const encrypted = new Set<string>();
  for (const n of view.networks.values()) {
    if (!n.encrypted) continue;
    vnis.add(n.vni);
    encrypted.add(n.id);
  }
  const peers = new Set<string>();
  for (const e of view.endpoints.values()) {
    if (encrypted.has(e.networkId) && e.nodeId !== localNodeId && e.nodeAddr) peers.add(e.nodeAddr);
  }
  return {
    localAddr,
    vnis: [...vnis].sort((a, b) => a - b),
    peers: [...peers].sort(),
    keys: keys?.keys ?? [],
    txKeyId: keys?.txKeyId ?? 0,
  };
}
