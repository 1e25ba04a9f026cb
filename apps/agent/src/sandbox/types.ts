// Task sandboxes, as data: one network namespace per task, its interfaces on
// the overlay bridges, and its own /etc files. kernel.ts makes them, fake.ts stands in.

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

/** The task ID the node's ingress sandbox goes by among sandboxes (task IDs are hex: no clash). */
export const INGRESS_SANDBOX_ID = "ingress";
