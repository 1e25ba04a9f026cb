// What the agent asks of the kernel, as data. The drivers in this folder are
// the only code that runs `ip` or `bridge`; everything above them works on
// these plans and can be tested with the fakes.

import type { OverlayKey } from "@vipmesh/core";

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

/** What a sandbox is, as far as the kernel can tell (the hostname lives in the task's UTS namespace, not here). */
export interface SandboxState {
  taskId: string;
  /** Namespace name: names.sandbox(prefix, taskId). */
  name: string;
  interfaces: SandboxInterface[];
}

/** One task's network namespace and its interfaces. */
export interface SandboxPlan extends SandboxState {
  /** UTS hostname inside: the short task ID. Set by the process runner, not by the sandbox driver. */
  hostname: string;
  /** A routed link to the node's own namespace, the sandbox's default route (the ingress sandbox has one). */
  gateway?: SandboxGateway;
}

/**
 * A veth pair between the node's namespace and a sandbox, not on any bridge:
 * its host end carries `hostAddr`, its inner end (`gw0`) carries `addr` and is
 * the sandbox's default route, via `hostAddr`.
 */
export interface SandboxGateway {
  hostIfname: string;
  /** CIDR, e.g. 169.254.77.1/30 */
  hostAddr: string;
  /** CIDR, e.g. 169.254.77.2/30 */
  addr: string;
}

/** The inner end of a sandbox's gateway link. */
export const GATEWAY_IFNAME = "gw0";

export interface SandboxInterface {
  /** Inside the sandbox: eth0, eth1, … in network order. */
  ifname: string;
  /** The overlay network's VNI: the veth's host end joins that network's bridge. */
  vni: number;
  /** CIDR, e.g. 10.0.3.5/24 */
  addr: string;
  mac: string;
  /** Both veth ends' MTU when not OVERLAY_MTU: the network's (see OverlayNetworkPlan). */
  mtu?: number;
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

/** Task sandboxes: one network namespace per task, joined to the overlay bridges by veth pairs. */
export interface SandboxDriver {
  /** Creates or repairs the sandbox; an interface that is already right is left alone. Fails when a bridge is missing. */
  ensure(plan: SandboxPlan): Promise<void>;
  /** Deletes the sandbox's namespace and any host end of its veths left over; nothing there is fine. */
  remove(name: string): Promise<void>;
  /**
   * Every sandbox whose name starts with `prefix`, sorted by name; also one
   * with no interfaces for a host end whose namespace is gone, so that it can
   * be removed.
   */
  list(prefix: string): Promise<SandboxState[]>;
  /** TCP connections established inside the sandbox (a draining task waits for these to end). */
  establishedConnections(name: string): Promise<number>;
}

/** MTU of overlay devices and sandbox interfaces: 1500 minus VXLAN's 50 bytes of encapsulation (less on encrypted networks). */
export const OVERLAY_MTU = 1450;
export { VXLAN_UDP_PORT as VXLAN_PORT } from "@vipmesh/core";

/** Names of vipmesh-owned kernel objects. Short enough for IFNAMSIZ (15). */
export const names = {
  bridge: (vni: number) => `vmbr${vni}`,
  vxlan: (vni: number) => `vmvx${vni}`,
  /** Host end of a sandbox's veth: stable per (task, interface index). */
  hostVeth: (taskId: string, index: number) => `vmv${taskId.slice(0, 10)}${index}`,
  /** Host end of a task sandbox's gateway link (host-mode ports). */
  gatewayVeth: (taskId: string) => `vmg${taskId.slice(0, 12)}`,
  /** A task's namespace; the prefix tells whose it is (an agent's, a lab's), so leftovers can be found. */
  sandbox: (prefix: string, taskId: string) => `${prefix}${taskId}`,
};

/** The task ID the node's ingress sandbox goes by among sandboxes (task IDs are hex: no clash). */
export const INGRESS_SANDBOX_ID = "ingress";

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
