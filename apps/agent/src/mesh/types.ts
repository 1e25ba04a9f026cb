// What the agent asks of the routing mesh on its node (kernel.ts makes it, fake.ts stands in).

import type { SandboxGateway } from "../sandbox/types.ts";
import type { PublishedPort, TaskIngressFilter } from "./plan.ts";

/**
 * The node ↔ ingress sandbox link. Link-local addresses: the link never
 * leaves the node, and 169.254.0.0/16 is not anyone's network to clash with.
 */
export const INGRESS_GATEWAY: SandboxGateway = { hostIfname: "vmingress", hostAddr: "169.254.77.1/30", addr: "169.254.77.2/30" };
/** The ingress sandbox's interface on the ingress network. */
export const INGRESS_OVERLAY_IFNAME = "eth0";

export interface MeshDriver {
  /** Once the sandbox driver made the ingress sandbox (with INGRESS_GATEWAY): forwarding, the route to `subnet`, its NAT. */
  ensureIngress(sandbox: string, subnet: string): Promise<void>;
  /** The node's published ports, exactly these: through the mesh, and host-mode ports of its tasks. */
  publish(mesh: readonly PublishedPort[], host: readonly PublishedPort[]): Promise<void>;
  /** A task sandbox's ingress filter; nothing for a task that is not on the ingress network. */
  filterTask(sandbox: string, filter: TaskIngressFilter | undefined): Promise<void>;
  /** Drops what is kept of a sandbox that goes. */
  forget(sandbox: string): void;
  close(): void;
}
