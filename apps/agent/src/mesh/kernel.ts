// The routing mesh in the kernel (render.ts draws the path): the node's
// published-ports table and route to its ingress sandbox, the ingress
// sandbox's forwarding and masquerade, and the filter on task sandboxes'
// ingress interfaces. What this process last applied is kept, so a sync that
// changes nothing writes nothing; an agent restart applies everything once.
// The ingress sandbox itself (namespace, overlay interface, gateway link) is
// made by the sandbox driver, its load balancing by the VIP dataplane.

import { addrOf } from "@vipmesh/core";
import { flushPublishedUdpPort } from "../kernel/conntrack.ts";
import { loadNft } from "../kernel/nft.ts";
import { run, runIn, type KernelOptions } from "../kernel/run.ts";

/** One `ip` write in the node's namespace, announced like the drivers' batches. */
async function writeCommandIn(o: KernelOptions, args: string[]): Promise<void> {
  o.onWrite?.({ tool: "ip", netns: o.netns, lines: [args.join(" ")] });
  await run("ip", args, { netns: o.netns });
}
import { GATEWAY_IFNAME, type SandboxGateway } from "../kernel/types.ts";
import type { PublishedPort, TaskIngressFilter } from "./plan.ts";
import { ProxyProtocolForwarder } from "./proxy-protocol.ts";
import { renderIngressSandbox, renderPublishedPorts, renderTaskIngressFilter } from "./render.ts";

/**
 * The node ↔ ingress sandbox link. Link-local addresses: the link never
 * leaves the node, and 169.254.0.0/16 is not anyone's network to clash with.
 */
export const INGRESS_GATEWAY: SandboxGateway = { hostIfname: "vmingress", hostAddr: "169.254.77.1/30", addr: "169.254.77.2/30" };
/** The ingress sandbox's interface on the ingress network. */
export const INGRESS_OVERLAY_IFNAME = "eth0";

const TRUST_MS = 10_000;

export class KernelMesh {
  /**
   * The script this process last loaded per namespace ("" for the node's own
   * when it is the current one), and when: trusted for TRUST_MS, then loaded
   * again (a table flushed from outside comes back).
   */
  private readonly loaded = new Map<string, { script: string; at: number }>();
  /** The node's published UDP ports, as last loaded: port → where to. */
  private udpPublished = new Map<number, string>();

  private readonly forwarder: ProxyProtocolForwarder;

  /** The forwarder listens in this process's namespace: run the agent in the node's (the lab does). */
  constructor(private readonly o: KernelOptions & { log?: (line: string) => void } = {}) {
    this.forwarder = new ProxyProtocolForwarder({ ...(o.log ? { log: o.log } : {}) });
  }

  /** Stops listening on the PROXY protocol ports. */
  close(): void {
    this.forwarder.close();
  }

  /**
   * Once the sandbox driver made the ingress sandbox (with INGRESS_GATEWAY):
   * forwarding on in it and in the node, the ingress network routed to it,
   * its NAT table.
   */
  async ensureIngress(sandbox: string, subnet: string): Promise<void> {
    await runIn(sandbox, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    // the node forwards between its addresses and the ingress sandbox (a lab node has it on already)
    if ((await runIn(this.o.netns, ["sysctl", "-n", "net.ipv4.ip_forward"])).trim() !== "1") {
      await runIn(this.o.netns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    }
    await writeCommandIn(this.o, ["route", "replace", subnet, "via", addrOf(INGRESS_GATEWAY.addr), "dev", INGRESS_GATEWAY.hostIfname]);
    this.loaded.delete(sandbox);
    await this.load(sandbox, renderIngressSandbox(INGRESS_OVERLAY_IFNAME, GATEWAY_IFNAME));
  }

  /**
   * The node's published ports, exactly these (nothing written when they
   * already are): in the kernel, or, for those that send a PROXY protocol
   * header, by the forwarder. Then the UDP flows of a port that went or leads
   * elsewhere are flushed, so that a client sending steadily follows the change.
   */
  async publish(mesh: readonly PublishedPort[], host: readonly PublishedPort[]): Promise<void> {
    await this.load(this.o.netns, renderPublishedPorts(mesh.filter((p) => !p.proxyProtocol), host));
    await this.forwarder.sync(mesh);
    const udp = new Map([...mesh, ...host].filter((p) => p.protocol === "udp").map((p) => [p.port, `${p.to}:${p.targetPort}`]));
    const moved = [...this.udpPublished].filter(([port, to]) => udp.get(port) !== to).map(([port]) => port);
    for (const port of moved) await flushPublishedUdpPort(this.o.netns, port);
    this.udpPublished = udp; // after: a failed flush is tried again by the next sync
  }

  /** A task sandbox's ingress filter; nothing for a task that is not on the ingress network. */
  async filterTask(sandbox: string, filter: TaskIngressFilter | undefined): Promise<void> {
    if (filter) await this.load(sandbox, renderTaskIngressFilter(filter));
  }

  forget(sandbox: string): void {
    this.loaded.delete(sandbox);
  }

  private async load(netns: string | undefined, script: string): Promise<void> {
    const key = netns ?? "";
    const last = this.loaded.get(key);
    if (last?.script === script && Date.now() - last.at < TRUST_MS) return;
    this.loaded.delete(key); // unknown until it succeeds
    await loadNft(netns, script);
    this.loaded.set(key, { script, at: Date.now() });
  }
}
