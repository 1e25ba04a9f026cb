// The network reconciler (kube-proxy's and libnetwork's job): brings this
// node's networking to its view through the drivers — IPsec, the overlay, each
// task's sandbox with its load balancing and DNS, the routing mesh — and
// removes what is no longer wanted. It knows the drivers only by their
// interfaces; each driver keeps its own state and files.

import { attachmentRefusal, isTerminal, macForIpv4, type NetworkView, type OverlayKeySet, SandboxDerivation, type Task, taskHostname, type ViewDelta } from "@vipmesh/core";
import type { DnsDriver } from "../dns/types.ts";
import { names } from "../exec/names.ts";
import { ipsecPlanFor } from "../ipsec/plan.ts";
import type { IpsecDriver } from "../ipsec/types.ts";
import type { LoadBalancer } from "../lb/types.ts";
import { GatewayAddresses } from "../mesh/gateways.ts";
import { hostPublishedFor, ingressPlanFor, type IngressPlan, taskIngressFilter } from "../mesh/plan.ts";
import { INGRESS_GATEWAY, INGRESS_OVERLAY_IFNAME, type MeshDriver } from "../mesh/types.ts";
import { networkMtu, overlayPlanFor, withDroppedRemotes } from "../overlay/plan.ts";
import type { OverlayDriver, OverlayPlan } from "../overlay/types.ts";
import { INGRESS_SANDBOX_ID, type SandboxDriver, type SandboxPlan } from "../sandbox/types.ts";
import type { TaskNetwork } from "../tasks/reconciler.ts";

export interface NetworkDrivers {
  overlay: OverlayDriver;
  sandboxes: SandboxDriver;
  /** The VIP load balancer inside sandboxes (nftables or IPVS); without one, VIPs are not balanced. */
  loadBalancer?: LoadBalancer;
  /** The embedded DNS at 127.0.0.11 in every sandbox. */
  dns?: DnsDriver;
  /** The routing mesh (published ports on this node, its ingress sandbox); needs the load balancer. */
  mesh?: MeshDriver;
  /** ESP between nodes for encrypted networks; without it, tasks on encrypted networks are refused. */
  ipsec?: IpsecDriver;
}

export interface NetworkReconcilerOptions extends NetworkDrivers {
  /** The session's view: changed in place by every assignment (onView says how). */
  view: NetworkView;
  advertiseAddr: string;
  /** Prefix of this agent's sandbox namespaces. */
  sandboxPrefix: string;
  again: (ms: number) => void;
  log: (line: string) => void;
}

export class NetworkReconciler implements TaskNetwork {
  /** Per set of networks, what a sandbox on them gets from the view (LB plan, DNS records), kept current from its deltas. */
  private readonly derivations = new Map<string, SandboxDerivation>();
  /** Gateway links of the sandboxes of tasks with host-mode ports. */
  private readonly gateways = new GatewayAddresses();
  /** Why this node cannot carry encrypted networks now (undefined: it can), as of the last sync. */
  private cannotEncrypt: string | undefined;
  /** The node's part of the mesh as of the last sync; undefined: no ingress sandbox. */
  private ingress: IngressPlan | undefined;
  /** The overlay as of the last sync. */
  private overlay: OverlayPlan | undefined;
  /** The running tasks of the last sync. */
  private live: readonly Task[] = [];

  constructor(private readonly o: NetworkReconcilerOptions) {}

  private get view(): NetworkView {
    return this.o.view;
  }

  /** Follows a change of the view: derivations are kept current from deltas, or made anew after a full assignment. */
  onView(delta: ViewDelta, full: boolean): void {
    if (full) this.derivations.clear();
    else for (const d of this.derivations.values()) d.apply(this.view, delta);
  }

  /**
   * IPsec and the overlay first, then every running task's sandbox and the
   * ingress sandbox at once: their load balancing and DNS are what a change
   * elsewhere waits for. `running`: whether a task's process runs.
   */
  async sync(nodeId: string, encryption: OverlayKeySet | undefined, tasks: readonly Task[], running: (taskId: string) => boolean): Promise<void> {
    // the gateway links that tasks adopted after a restart already have
    if (!this.gateways.seeded) this.gateways.seed(await this.o.sandboxes.list(this.o.sandboxPrefix));
    this.cannotEncrypt = await this.syncEncryption(nodeId, encryption);
    const overlay = overlayPlanFor(this.view, this.o.advertiseAddr, nodeId, this.cannotEncrypt);
    // remotes leave the overlay only once no VIP here balances to them (a node marked down: its tasks)
    const meanwhile = this.overlay ? withDroppedRemotes(this.overlay, overlay) : overlay;
    await this.o.overlay.sync(meanwhile);
    this.ingress = this.o.mesh && this.o.loadBalancer ? ingressPlanFor(this.view, nodeId) : undefined;
    const live = tasks.filter((t) => !isTerminal(t.status.state) && running(t.id));
    this.live = live;
    await Promise.all([...live.map((t) => this.balance(t)), this.syncMesh(this.ingress, live)]);
    if (meanwhile !== overlay) await this.o.overlay.sync(overlay);
    this.overlay = overlay;
  }

  /** After sync: removes the sandboxes of tasks not in `wanted` (and the ingress sandbox when the node has none), and what was derived for them. */
  async sweep(tasks: readonly Task[], wanted: ReadonlySet<string>): Promise<void> {
    const ingress = this.ingress;
    for (const sb of await this.o.sandboxes.list(this.o.sandboxPrefix)) {
      if (wanted.has(sb.taskId) || (ingress && sb.taskId === INGRESS_SANDBOX_ID)) continue;
      await this.detach(sb.taskId);
      // the node's table filtered what came from the ingress sandbox: published again without it
      if (sb.taskId === INGRESS_SANDBOX_ID) await this.syncMesh(undefined, this.live);
    }
    // real servers still draining (IPVS) are deleted by a sync once their connections end
    if (this.o.loadBalancer?.draining()) this.o.again(1000);
    const used = new Set(tasks.map((t) => networksKey(this.balancedNetworks(t))));
    if (ingress) used.add(networksKey([ingress.networkId]));
    for (const key of this.derivations.keys()) if (!used.has(key)) this.derivations.delete(key);
  }

  refusal(t: Task): string | undefined {
    return t.networks
      .map((a) => this.view.networks.get(a.networkId))
      .map((n) => n && attachmentRefusal(n, this.cannotEncrypt))
      .find(Boolean);
  }

  async attach(t: Task): Promise<string> {
    const plan = this.sandboxPlan(t);
    await this.o.sandboxes.ensure(plan);
    await this.balance(t);
    return plan.name;
  }

  async detach(taskId: string): Promise<void> {
    const name = this.sandboxOf(taskId);
    this.o.loadBalancer?.forget(name);
    this.o.mesh?.forget(name);
    this.gateways.release(taskId);
    await this.o.dns?.detach(name);
    await this.o.sandboxes.remove(name);
  }

  sandboxOf(taskId: string): string {
    return names.sandbox(this.o.sandboxPrefix, taskId);
  }

  openConnections(taskId: string): Promise<number> {
    return this.o.sandboxes.establishedConnections(this.sandboxOf(taskId));
  }

  async close(): Promise<void> {
    this.o.mesh?.close();
    await this.o.dns?.close();
  }

  private sandboxPlan(t: Task): SandboxPlan {
    return {
      taskId: t.id,
      name: this.sandboxOf(t.id),
      hostname: taskHostname(t),
      interfaces: t.networks.map((a, i) => {
        const addr = a.addresses[0]!;
        const net = this.view.networks.get(a.networkId)!;
        return { ifname: `eth${i}`, vni: net.vni, addr, mac: macForIpv4(addr), ...networkMtu(net) };
      }),
      ...(t.hostPorts?.length ? { gateway: this.gateways.for(t.id) } : {}),
    };
  }

  /**
   * Makes IPsec carry this node's encrypted networks (ESP to the nodes of
   * their remote endpoints, and the guard that drops their VXLAN in plaintext
   * either way). Returns why it cannot, if it cannot: those networks then get
   * no tunnel and no task (fail closed).
   */
  private async syncEncryption(nodeId: string, encryption: OverlayKeySet | undefined): Promise<string | undefined> {
    const ipsec = this.o.ipsec;
    const plan = ipsecPlanFor(this.view, this.o.advertiseAddr, nodeId, encryption);
    if (plan.vnis.length === 0) {
      // nothing encrypted here: remove what an earlier plan (or run) left; that failing blocks nothing
      await ipsec?.sync(plan).catch((err: unknown) => this.o.log(`cannot remove IPsec state: ${message(err)}`));
      return undefined;
    }
    if (!ipsec) return "this agent runs without IPsec";
    if (plan.keys.length === 0) return "this node has no overlay keys from the manager yet (a manager started with --insecure sends none)";
    try {
      await ipsec.sync(plan);
      return undefined;
    } catch (err) {
      const failure = `this node cannot encrypt its overlay traffic (${message(err)})`;
      if (failure !== this.cannotEncrypt) this.o.log(`encrypted networks stay down: ${message(err)}`);
      return failure;
    }
  }

  /**
   * The node's part of the routing mesh: its ingress sandbox and what it
   * balances, and every port the node opens. A failure is logged and tried
   * again soon, and holds up nothing else (tasks start, stop and drain all the same).
   */
  private async syncMesh(ingress: IngressPlan | undefined, live: readonly Task[]): Promise<void> {
    try {
      if (ingress) await this.syncIngressSandbox(ingress); // else the sweep removes it
      // the mesh's ports, and the host-mode ports of this node's running tasks
      await this.o.mesh?.publish(
        ingress?.published ?? [],
        hostPublishedFor(live, (t) => this.gateways.get(t.id)?.addr),
      );
    } catch (err) {
      this.o.log(`routing mesh not in place, trying again in 1 s: ${message(err)}`);
      this.o.again(1000);
    }
  }

  /** The ingress sandbox, its link to the node, and the VIPs of the ingress network balanced in it to the services' tasks. */
  private async syncIngressSandbox(ingress: IngressPlan): Promise<void> {
    const name = this.sandboxOf(INGRESS_SANDBOX_ID);
    await this.o.sandboxes.ensure({
      taskId: INGRESS_SANDBOX_ID,
      name,
      hostname: INGRESS_SANDBOX_ID,
      interfaces: [{ ifname: INGRESS_OVERLAY_IFNAME, vni: ingress.vni, addr: ingress.addr, mac: macForIpv4(ingress.addr) }],
      gateway: INGRESS_GATEWAY,
    });
    await this.o.mesh!.ensureIngress(name, ingress.subnet);
    await this.o.loadBalancer!.sync(name, this.derivedFor([ingress.networkId]).plan, true);
    await this.o.loadBalancer!.flushStaleFlows(name);
  }

  /** The services on the task's networks, inside its sandbox: their VIPs balanced, their names resolved. */
  private async balance(t: Task): Promise<void> {
    const { plan, records } = this.derivedFor(this.balancedNetworks(t));
    const sandbox = this.sandboxOf(t.id);
    await this.o.mesh?.filterTask(sandbox, taskIngressFilter(this.view, t));
    await this.o.loadBalancer?.sync(sandbox, plan);
    await this.o.dns?.attach(sandbox, records);
    // last: what a client still sends to a backend that left, once no new flow can go there
    await this.o.loadBalancer?.flushStaleFlows(sandbox);
  }

  /** The networks whose services a task's sandbox balances and resolves: its own, not the ingress network (the ingress sandbox's). */
  private balancedNetworks(t: Task): string[] {
    return t.networks.map((a) => a.networkId).filter((id) => !this.view.networks.get(id)?.ingress);
  }

  /** The LB plan and DNS records of a sandbox on `networkIds`, as the view now says. */
  private derivedFor(networkIds: string[]): SandboxDerivation {
    const key = networksKey(networkIds);
    let d = this.derivations.get(key);
    if (!d) this.derivations.set(key, (d = new SandboxDerivation(this.view, new Set(networkIds))));
    return d;
  }
}

const networksKey = (networkIds: string[]): string => [...networkIds].sort().join(" ");

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));
