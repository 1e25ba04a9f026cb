// The node's overlay, as data: per network a bridge and a VXLAN device, and
// the remote endpoints they reach. kernel.ts makes it, fake.ts stands in for it.

/** One overlay network present on this node: a bridge and a VXLAN device in the node's namespace. */
export interface OverlayNetworkPlan {
  networkId: string;
  vni: number;
  /** The VXLAN device's MTU when not OVERLAY_MTU (encrypted networks leave room for ESP). */
  mtu?: number;
  /** Remote endpoints of this network: tasks on other nodes. */
  remotes: RemoteEndpoint[];
}

export interface RemoteEndpoint {
  /** Task address without prefix, e.g. 10.0.3.5 */
  ip: string;
  mac: string;
  /** The underlay address of the node that runs it (the VXLAN destination). */
  nodeAddr: string;
}

export interface OverlayPlan {
  /** This node's underlay (advertise) address: the VXLAN devices' `local`. */
  localAddr: string;
  networks: OverlayNetworkPlan[];
}

/** The node's overlay: converges to a plan, and reads back what is there. */
export interface OverlayDriver {
  /**
   * Makes the node's vipmesh-owned bridges, VXLAN devices, FDB and neighbour
   * entries exactly the plan's: creates, fixes and removes what differs, and
   * writes nothing when they already are. Never touches other devices.
   */
  sync(plan: OverlayPlan): Promise<void>;
  /** What the kernel holds now, as a canonical plan (networks by VNI, remotes by address). */
  read(): Promise<OverlayPlan>;
}

/** MTU of overlay devices and sandbox interfaces: 1500 minus VXLAN's 50 bytes of encapsulation (less on encrypted networks). */
export const OVERLAY_MTU = 1450;
export { VXLAN_UDP_PORT as VXLAN_PORT } from "@vipmesh/core";
