// The routing mesh in the kernel (render.ts draws the path): the node's
// published-ports table and route to its ingress sandbox, the ingress
// sandbox's forwarding and masquerade, and the filter on task sandboxes'
// ingress interfaces. What this process last applied is kept, so a sync that
// changes nothing writes nothing; an agent restart applies everything once.
// The ingress sandbox itself (namespace, overlay interface, gateway link) is
// made by the sandbox driver, its load balancing by the VIP dataplane.

import { addrOf } from "@vipmesh/core";
import { flushPublishedUdpPort } from "../lb/conntrack.ts";
import { deleteTableScript, loadNft } from "../exec/nft.ts";
import { run, runIn, type KernelOptions } from "../exec/run.ts";

import { TrustCache } from "../exec/trust.ts";
import { GATEWAY_IFNAME } from "../sandbox/types.ts";
import { INGRESS_GATEWAY, INGRESS_OVERLAY_IFNAME, type MeshDriver } from "./types.ts";
import type { PublishedPort, TaskIngressFilter } from "./plan.ts";
import { ProxyProtocolForwarder } from "./proxy-protocol.ts";
import { MESH_TABLE, renderIngressSandbox, renderPublishedPorts, renderTaskIngressFilter } from "./render.ts";

/** One `ip` write in the node's namespace, announced like the drivers' batches. */
async function writeCommandIn(o: KernelOptions, args: string[]): Promise<void> {
  o.onWrite?.({ tool: "ip", netns: o.netns, lines: [args.join(" ")] });
  await run("ip", args, { netns: o.netns });
}

const TRUST_MS = 10_000;

export class KernelMesh implements MeshDriver {
  /**
   * Per namespace ("" for the node's own when it is the current one), the
   * script this process last loaded there, and each ingress sandbox's setup:
   * trusted for TRUST_MS, then made again (a table flushed from outside comes back).
   */
  private readonly trust = new TrustCache(TRUST_MS);
  /** The node's published UDP ports, as last loaded: port → where to. */
  private udpPublished = new Map<number, string>();

  private readonly forwarder: ProxyProtocolForwarder;

  /** The forwarder listens in this process's namespace: run the agent in the node's (the lab does). */
  /** The ingress sandbox once made here: the node's table filters what comes from it. */
  private ingressSandbox: string | undefined;

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
    await this.trust.ensure(`ingress ${sandbox}`, subnet, () => this.makeIngress(sandbox, subnet));
  }

  private async makeIngress(sandbox: string, subnet: string): Promise<void> {
    this.ingressSandbox = sandbox;
    await runIn(sandbox, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    // the node forwards between its addresses and the ingress sandbox (a lab node has it on already)
    if ((await runIn(this.o.netns, ["sysctl", "-n", "net.ipv4.ip_forward"])).trim() !== "1") {
      await runIn(this.o.netns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    }
    await writeCommandIn(this.o, ["route", "replace", subnet, "via", addrOf(INGRESS_GATEWAY.addr), "dev", INGRESS_GATEWAY.hostIfname]);
    this.trust.forget(sandbox);
    await this.load(sandbox, renderIngressSandbox(INGRESS_OVERLAY_IFNAME, GATEWAY_IFNAME));
  }

  /**
   * The node's published ports, exactly these (nothing written when they
   * already are): in the kernel, or, for those that send a PROXY protocol
   * header, by the forwarder. Then the UDP flows of a port that went or leads
   * elsewhere are flushed, so that a client sending steadily follows the change.
   */
  async publish(mesh: readonly PublishedPort[], host: readonly PublishedPort[]): Promise<void> {
    // nothing published and no ingress sandbox to filter: nothing of vipmesh stays in the node's firewall
    const none = mesh.length === 0 && host.length === 0 && this.ingressSandbox === undefined;
    await this.load(this.o.netns, none ? deleteTableScript(MESH_TABLE) : renderPublishedPorts(mesh.filter((p) => !p.proxyProtocol), host));
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
    if (sandbox === this.ingressSandbox) this.ingressSandbox = undefined;
    this.trust.forget(sandbox);
    this.trust.forget(`ingress ${sandbox}`);
  }

  private async load(netns: string | undefined, script: string): Promise<void> {
    await this.trust.ensure(netns ?? "", script, () => loadNft(netns, script).then(() => undefined));
  }
}
