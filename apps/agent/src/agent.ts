// The node agent: converges this node to its assignment. Assignments only
// record what is wanted (in the session's view) and ask for a sync; one sync
// loop, driven by a bounded-frequency runner, touches the kernel and the task
// processes, and acknowledges the view version it applied. It refuses to run
// before the first full assignment, and a restarted agent adopts what is still
// wanted instead of flushing.

import {
  addrOf,
  attachmentRefusal,
  type NetworkView,
  isTerminal,
  SandboxDerivation,
  type ViewDelta,
  macForIpv4,
  type Task,
} from "@vipmesh/core";
import type { NodeIdentity } from "@vipmesh/api";
import type { EmbeddedDns } from "./dns/server.ts";
import type { LoadBalancer } from "./dataplane/types.ts";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BoundedFrequencyRunner } from "./runner.ts";
import { ManagerSession } from "./session.ts";
import { ipsecPlanFor, networkMtu, overlayPlanFor } from "./overlay-plan.ts";
import { INGRESS_SANDBOX_ID, type IpsecDriver, names, type OverlayDriver, type SandboxDriver, type SandboxPlan } from "./kernel/types.ts";
import { GatewayAddresses } from "./mesh/gateways.ts";
import { INGRESS_GATEWAY, INGRESS_OVERLAY_IFNAME, type KernelMesh } from "./mesh/kernel.ts";
import { hostPublishedFor, ingressPlanFor, type IngressPlan, taskIngressFilter } from "./mesh/plan.ts";
import { HealthChecker } from "./tasks/health.ts";
import { ProcessRunner } from "./tasks/process-runner.ts";
import { serveLogRequest } from "./tasks/logs.ts";

export interface AgentOptions {
  manager: string;
  /** The node's certificate, renewed while the agent runs; undefined: plaintext to a manager started with --insecure. */
  identity?: NodeIdentity;
  advertiseAddr: string;
  hostname: string;
  stateDir: string;
  /** Prefix of this agent's sandbox namespaces (the lab makes it unique per lab and node). */
  sandboxPrefix: string;
  binDir: string;
  stopGraceMs?: number;
  overlay: OverlayDriver;
  sandboxes: SandboxDriver;
  /** The VIP load balancer inside sandboxes (nftables or IPVS); without one, VIPs are not balanced (and say so). */
  loadBalancer?: LoadBalancer;
  /** The embedded DNS at 127.0.0.11 in every sandbox. */
  dns?: EmbeddedDns;
  /** The routing mesh (published ports on this node, its ingress sandbox); needs the load balancer. */
  mesh?: KernelMesh;
  /** ESP between nodes for encrypted networks; without it, tasks on encrypted networks are refused. */
  ipsec?: IpsecDriver;
  log?: (line: string) => void;
}

export class Agent {
  readonly session: ManagerSession;
  private readonly runner: BoundedFrequencyRunner;
  private readonly processes: ProcessRunner;
  /** The last state reported per task in this session, so that each is said once. */
  private readonly reported = new Map<string, string>();
  /** How each task whose process ended, ended. */
  private readonly ended = new Map<string, { state: "complete" | "failed"; err: string }>();
  private readonly log: (line: string) => void;
  private readonly health = new HealthChecker(() => this.runner.run());
  /** When each task being stopped was first seen so. */
  private readonly stopping = new Map<string, number>();
  /** Per set of networks, what a sandbox on them gets from the view (LB plan, DNS records), kept current from its deltas. */
  private readonly derivations = new Map<string, SandboxDerivation>();
  /** The ingress sandbox plan last made in the kernel, and when: trusted for MESH_TRUST_MS, then made again (drift is repaired). */
  private ingressMade: { plan: string; at: number } | undefined;
  /** Gateway links of the sandboxes of tasks with host-mode ports. */
  private readonly gateways = new GatewayAddresses();
  /** The IPsec plan last made in the kernel (or that failed, and why), and when: trusted for IPSEC_TRUST_MS, as the mesh's. */
  private ipsecMade: { plan: string; at: number; inUse: boolean; failure?: string } | undefined;

  private get stopGraceMs(): number {
    return this.o.stopGraceMs ?? 10_000;
  }

  constructor(private readonly o: AgentOptions) {
    this.log = o.log ?? ((line) => console.error(`agent ${o.hostname}: ${line}`));
    mkdirSync(o.stateDir, { recursive: true });
    this.session = new ManagerSession({
      manager: o.manager,
      credentials: o.identity ? { identity: o.identity.source } : "insecure",
      ...(o.identity ? { nodeId: o.identity.nodeId } : {}),
      hostname: o.hostname,
      advertiseAddr: o.advertiseAddr,
      stateDir: o.stateDir,
      // what the manager checks each service's LB settings against
      ...(o.loadBalancer ? { dataplane: o.loadBalancer.dataplane } : {}),
      log: this.log,
    });
    this.processes = new ProcessRunner({ stateDir: o.stateDir, binDir: o.binDir, stopGraceMs: this.stopGraceMs });
    // a task's log can grow while its process runs or while it is still in the view (it may yet start)
    const logs = {
      logFile: (taskId: string) => this.processes.logFile(taskId),
      growing: (taskId: string) => this.processes.isRunning(taskId) || this.session.view.tasks.has(taskId),
    };
    this.session.serveLogs((req, send, signal) => serveLogRequest(req, logs, send, signal));
    this.runner = new BoundedFrequencyRunner(() => this.sync(), { minIntervalMs: 20, maxIntervalMs: 30_000, retryMs: 1000 }, (err) =>
      this.log(`sync failed, retrying: ${err instanceof Error ? err.message : String(err)}`),
    );
  }

  start(): void {
    const { adopted, lost } = this.processes.adopt();
    if (adopted.length > 0) this.log(`adopted ${adopted.length} running task(s)`);
    for (const taskId of lost) this.ended.set(taskId, { state: "failed", err: "exited while the agent was not running" });
    this.processes.on("exit", ({ taskId, code, signal }) => {
      const err = signal ? `killed by ${signal}` : code === null ? "exited" : `exit status ${code}`;
      this.ended.set(taskId, { state: code === 0 ? "complete" : "failed", err: code === 0 ? "" : err });
      this.runner.run();
    });
    // a new session may have missed what the last one said: say it again
    this.session.on("open", () => this.reported.clear());
    this.session.on("view", (delta: ViewDelta, full: boolean) => {
      if (full) this.derivations.clear(); // made anew from the new view when next asked for
      else for (const d of this.derivations.values()) d.apply(this.session.view, delta);
      this.runner.run();
    });
    this.session.start();
    this.o.identity?.startRenewal();
    this.runner.start();
  }

  async stop(): Promise<void> {
    this.runner.stop();
    this.o.identity?.stop();
    this.session.stop();
    this.processes.close();
    this.health.close();
    this.o.mesh?.close();
    await this.o.dns?.close();
  }

  private report(taskId: string, state: string, err = ""): void {
    const health = this.health.health(taskId);
    const said = `${state}/${health}`;
    if (this.reported.get(taskId) === said) return;
    this.reported.set(taskId, said);
    this.session.report(taskId, { state, message: state, err, health });
  }

  private sandboxPlan(t: Task): SandboxPlan {
    const view = this.session.view;
    return {
      taskId: t.id,
      name: names.sandbox(this.o.sandboxPrefix, t.id),
      hostname: t.id.slice(0, 12),
      interfaces: t.networks.map((a, i) => {
        const addr = a.addresses[0]!;
        const net = view.networks.get(a.networkId)!;
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
  private async syncEncryption(view: NetworkView, nodeId: string): Promise<string | undefined> {
    const ipsec = this.o.ipsec;
    const plan = ipsecPlanFor(view, this.o.advertiseAddr, nodeId, this.session.encryption);
    const key = JSON.stringify(plan);
    if (plan.vnis.length === 0) {
      // nothing encrypted here: remove what an earlier plan (or run) left, once; that failing blocks nothing
      if (!ipsec || (this.ipsecMade && !this.ipsecMade.inUse)) return undefined;
      await ipsec.sync(plan).catch((err: unknown) => this.log(`cannot remove IPsec state: ${err instanceof Error ? err.message : String(err)}`));
      this.ipsecMade = { plan: key, at: Date.now(), inUse: false };
      return undefined;
    }
    if (!ipsec) return "this agent runs without IPsec";
    if (plan.keys.length === 0) return "this node has no overlay keys from the manager yet (a manager started with --insecure sends none)";
    if (this.ipsecMade?.plan === key && Date.now() - this.ipsecMade.at < IPSEC_TRUST_MS) return this.ipsecMade.failure;
    let failure: string | undefined;
    try {
      await ipsec.sync(plan);
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      this.log(`encrypted networks stay down: ${why}`);
      failure = `this node cannot encrypt its overlay traffic (${why})`;
    }
    this.ipsecMade = { plan: key, at: Date.now(), inUse: true, ...(failure ? { failure } : {}) };
    return failure;
  }

  /** One pass: overlay, running tasks' sandboxes, then tasks to stop and start, then leftovers; acknowledges what it applied. */
  private async sync(): Promise<void> {
    const { view, version, nodeId } = this.session;
    if (version === 0) return; // nothing to converge to before the first full assignment
    // the gateway links that tasks adopted after a restart already have
    if (!this.gateways.seeded) this.gateways.seed(await this.o.sandboxes.list(this.o.sandboxPrefix));
    // the view changes while this sync awaits: act on the tasks the overlay was planned for,
    // and let the next sync (the runner runs again) take what arrives meanwhile
    const tasks = [...view.tasks.values()];
    const cannotEncrypt = await this.syncEncryption(view, nodeId);
    await this.o.overlay.sync(overlayPlanFor(view, this.o.advertiseAddr, nodeId, cannotEncrypt));
    const ingress = this.o.mesh && this.o.loadBalancer ? ingressPlanFor(view, nodeId) : undefined;

    // the sandboxes of running tasks, and the ingress sandbox, follow the view first, all at once: their
    // load balancing and DNS are what a change elsewhere waits for; tasks to stop or start come after
    await Promise.all([
      ...tasks.filter((t) => !isTerminal(t.status.state) && this.processes.isRunning(t.id)).map((t) => this.balance(t)),
      this.syncMesh(ingress, tasks),
    ]);

    const wanted = new Set<string>(ingress ? [INGRESS_SANDBOX_ID] : []);
    for (const t of tasks) {
      if (isTerminal(t.status.state)) continue;
      wanted.add(t.id);
      if (t.desiredState !== "running") {
        if (this.reported.get(t.id)?.startsWith("shutdown/")) continue;
        if (!(await this.drained(t))) continue; // still serving what it was given: look again soon
        await this.remove(t.id);
        this.report(t.id, "shutdown");
        continue;
      }
      if (this.processes.isRunning(t.id)) {
        this.watchHealth(t, t.status.health); // an adopted task (agent restart) is checked anew, keeping its health meanwhile
        this.report(t.id, "running");
        continue;
      }
      const ended = this.ended.get(t.id);
      if (ended) {
        this.report(t.id, ended.state, ended.err);
        continue;
      }
      const refusal = t.networks.map((a) => view.networks.get(a.networkId)).map((n) => n && attachmentRefusal(n, cannotEncrypt)).find(Boolean);
      if (refusal) {
        this.report(t.id, "rejected", refusal);
        continue;
      }
      this.report(t.id, "starting");
      try {
        const plan = this.sandboxPlan(t);
        await this.o.sandboxes.ensure(plan);
        writeSandboxFiles(plan);
        await this.balance(t); // VIPs work from the task's first instant
        await this.processes.start({
          taskId: t.id,
          serviceName: t.serviceName,
          sandbox: plan.name,
          hostname: plan.hostname,
          command: t.spec.container.command,
          env: t.spec.container.env,
        });
        this.watchHealth(t); // reported "starting" with "running": not ready until the check passes
        this.report(t.id, "running");
      } catch (err) {
        // one task that cannot start must not hold up the others: it fails, and the manager replaces it
        const why = err instanceof Error ? err.message : String(err);
        this.log(`task ${t.id} cannot start: ${why}`);
        this.ended.set(t.id, { state: "failed", err: `cannot start: ${why}` });
        this.report(t.id, "failed", `cannot start: ${why}`);
      }
    }

    // what this agent made for tasks that are no longer its own
    for (const taskId of this.processes.known()) if (!wanted.has(taskId)) await this.remove(taskId);
    for (const sb of await this.o.sandboxes.list(this.o.sandboxPrefix)) if (!wanted.has(sb.taskId)) await this.remove(sb.taskId);
    for (const taskId of this.reported.keys()) if (!view.tasks.has(taskId)) this.reported.delete(taskId);
    for (const taskId of this.ended.keys()) if (!view.tasks.has(taskId)) this.ended.delete(taskId);
    for (const taskId of this.stopping.keys()) if (!view.tasks.has(taskId)) this.stopping.delete(taskId);
    // real servers still draining (IPVS) are deleted by a sync once their connections end
    if (this.o.loadBalancer?.draining()) setTimeout(() => this.runner.run(), 1000).unref();
    const used = new Set(tasks.map((t) => networksKey(this.balancedNetworks(t))));
    if (ingress) used.add(networksKey([ingress.networkId]));
    for (const key of this.derivations.keys()) if (!used.has(key)) this.derivations.delete(key);

    this.session.ack(version);
  }

  /**
   * Graceful drain: a task told to stop keeps running until no agent balances
   * new connections to it (the manager marks it drained once every agent that
   * saw its service acknowledged the view without it) and its established
   * connections have ended — each bounded by the stop grace period, then it
   * stops anyway. Never a fixed sleep.
   */
  private async drained(t: Task): Promise<boolean> {
    if (!this.processes.isRunning(t.id)) return true;
    const since = this.stopping.get(t.id) ?? Date.now();
    this.stopping.set(t.id, since);
    const left = since + this.stopGraceMs - Date.now();
    if (left <= 0) return true;
    const again = () => setTimeout(() => this.runner.run(), Math.min(left, 200)).unref();
    if (!t.drained) {
      again();
      return false;
    }
    const open = await this.o.sandboxes.establishedConnections(names.sandbox(this.o.sandboxPrefix, t.id));
    if (open === 0) return true;
    again();
    return false;
  }

  private watchHealth(t: Task, known?: Task["status"]["health"]): void {
    const check = t.spec.container.healthcheck;
    if (check?.test.length) this.health.watch({ taskId: t.id, sandbox: names.sandbox(this.o.sandboxPrefix, t.id), check }, known);
  }

  /**
   * The node's part of the routing mesh: its ingress sandbox and what it
   * balances, and every port the node opens. A failure is logged and tried
   * again soon, and holds up nothing else (tasks start, stop and drain all the same).
   */
  private async syncMesh(ingress: IngressPlan | undefined, tasks: Task[]): Promise<void> {
    try {
      if (ingress) {
        await this.makeIngressSandbox(ingress);
        await this.balanceIngress(ingress);
      } else {
        this.ingressMade = undefined; // the sweep removes its sandbox
      }
      // the mesh's ports, and the host-mode ports of this node's ready tasks
      await this.o.mesh?.publish(
        ingress?.published ?? [],
        hostPublishedFor(tasks.filter((t) => this.processes.isRunning(t.id)), (t) => this.gateways.get(t.id)?.addr),
      );
    } catch (err) {
      this.log(`routing mesh not in place, trying again in 1 s: ${err instanceof Error ? err.message : String(err)}`);
      setTimeout(() => this.runner.run(), 1000).unref();
    }
  }

  /** The ingress sandbox, with its link to the node (its load balancing is balanceIngress's). */
  private async makeIngressSandbox(ingress: IngressPlan): Promise<void> {
    const plan: SandboxPlan = {
      taskId: INGRESS_SANDBOX_ID,
      name: names.sandbox(this.o.sandboxPrefix, INGRESS_SANDBOX_ID),
      hostname: INGRESS_SANDBOX_ID,
      interfaces: [{ ifname: INGRESS_OVERLAY_IFNAME, vni: ingress.vni, addr: ingress.addr, mac: macForIpv4(ingress.addr) }],
      gateway: INGRESS_GATEWAY,
    };
    const made = JSON.stringify([plan, ingress.subnet]);
    if (this.ingressMade?.plan === made && Date.now() - this.ingressMade.at < MESH_TRUST_MS) return;
    this.ingressMade = undefined; // until all of it is in place
    await this.o.sandboxes.ensure(plan);
    await this.o.mesh!.ensureIngress(plan.name, ingress.subnet);
    this.ingressMade = { plan: made, at: Date.now() };
  }

  /** The VIPs on the ingress network, balanced in the ingress sandbox to the services' tasks. */
  private async balanceIngress(ingress: IngressPlan): Promise<void> {
    const sandbox = names.sandbox(this.o.sandboxPrefix, INGRESS_SANDBOX_ID);
    await this.o.loadBalancer!.sync(sandbox, this.derivedFor([ingress.networkId]).plan, true);
    await this.o.loadBalancer!.flushStaleFlows(sandbox);
  }

  /** The services on the task's networks, inside its sandbox: their VIPs balanced, their names resolved. */
  private async balance(t: Task): Promise<void> {
    const { plan, records } = this.derivedFor(this.balancedNetworks(t));
    const sandbox = names.sandbox(this.o.sandboxPrefix, t.id);
    await this.o.mesh?.filterTask(sandbox, taskIngressFilter(this.session.view, t));
    if (this.o.loadBalancer) await this.o.loadBalancer.sync(sandbox, plan);
    await this.o.dns?.attach(sandbox, records);
    // last: what a client still sends to a backend that left, once no new flow can go there
    await this.o.loadBalancer?.flushStaleFlows(sandbox);
  }

  /** The networks whose services a task's sandbox balances and resolves: its own, not the ingress network (the ingress sandbox's). */
  private balancedNetworks(t: Task): string[] {
    const view = this.session.view;
    return t.networks.map((a) => a.networkId).filter((id) => !view.networks.get(id)?.ingress);
  }

  /** The LB plan and DNS records of a sandbox on `networkIds`, as the view now says. */
  private derivedFor(networkIds: string[]): SandboxDerivation {
    const key = networksKey(networkIds);
    let d = this.derivations.get(key);
    if (!d) this.derivations.set(key, (d = new SandboxDerivation(this.session.view, new Set(networkIds))));
    return d;
  }

  private async remove(taskId: string): Promise<void> {
    await this.processes.stop(taskId);
    const name = names.sandbox(this.o.sandboxPrefix, taskId);
    this.o.loadBalancer?.forget(name);
    this.o.mesh?.forget(name);
    this.gateways.release(taskId);
    await this.o.dns?.detach(name);
    this.health.forget(taskId);
    await this.o.sandboxes.remove(name);
    rmSync(join(NETNS_ETC, name), { recursive: true, force: true });
    this.processes.forget(taskId);
  }
}

const networksKey = (networkIds: string[]): string => [...networkIds].sort().join(" ");

/** How long an IPsec plan made in the kernel is trusted without making it again: drift (an SA deleted by hand) is repaired after. */
const IPSEC_TRUST_MS = 30_000;

/** How long what the mesh made is trusted without making it again (as the overlay's plan): drift is repaired after. */
const MESH_TRUST_MS = 10_000;

/** `ip netns exec` bind-mounts /etc/netns/NAME/* over /etc/*: each sandbox gets its own hosts and resolv.conf. */
const NETNS_ETC = "/etc/netns";

function writeSandboxFiles(plan: SandboxPlan): void {
  const dir = join(NETNS_ETC, plan.name);
  mkdirSync(dir, { recursive: true });
  const own = plan.interfaces.map((i) => `${addrOf(i.addr)}\t${plan.hostname}`).join("\n");
  writeFileSync(join(dir, "hosts"), `127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n${own}\n`);
  // the embedded DNS; ndots:0 so that a bare service name is asked as it is, first
  writeFileSync(join(dir, "resolv.conf"), "nameserver 127.0.0.11\noptions ndots:0\n");
}
