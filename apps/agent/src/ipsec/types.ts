// Encrypted overlays, as the agent asks for them (xfrm.ts says what the kernel holds for a plan).

import type { OverlayKey } from "@vipmesh/core";

/** What this node's encrypted overlays need from IPsec. Empty vnis: nothing of ours in xfrm or the guard table; empty peers: the guard only. */
export interface IpsecPlan {
  /** This node's underlay address. */
  localAddr: string;
  /** VNIs of the encrypted networks present on this node. */
  vnis: number[];
  /** Underlay addresses of the other nodes with which it exchanges encrypted VXLAN. */
  peers: string[];
  keys: OverlayKey[];
  /** The key this node sends with; one of keys. */
  txKeyId: number;
}

export interface IpsecDriver {
  /** Converges xfrm states/policies and the guard table to the plan; throws (leaving the guard in place) if the guard cannot be installed. */
  sync(plan: IpsecPlan): Promise<void>;
}
