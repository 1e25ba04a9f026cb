// The cluster API's domain operations. Each is one store transaction: it
// validates, allocates and writes, or throws and leaves nothing behind.
// Reconciling services into tasks is the orchestrator's job, not this one's.

import {
  type Network,
  type Node,
  type NodeSpec,
  type Resources,
  type Service,
  type ServiceSpec,
  type Task,
  type TaskStatus,
  VipmeshError,
  alreadyExists,
  checkDataplanesHonour,
  checkNodeAddress,
  invalid,
  isTerminal,
  nodeRemoved,
  normalizeDataplane,
  normalizeNetworkSpec,
  normalizeNodeLabels,
  normalizeNodeSpec,
  normalizeServiceSpec,
  precondition,
  specDefinition,
  TASK_RUNTIMES,
  TASK_STATES,
  type TaskRuntime,
  validateAdvertiseAddress,
} from "@vipmesh/core";
import type { Allocator } from "./allocator.ts";
import { newId } from "./ids.ts";
import { reclaimOrphans } from "./orchestrator.ts";
import type { ClusterStore, Tx } from "./store/cluster-store.ts";

export const INGRESS_NETWORK = "ingress";
/** Swarm's default for its ingress network. */
export const DEFAULT_INGRESS_SUBNET = "10.255.0.0/16";

/** What a registering node says it can run: its task runtimes and the resources it offers. */
export interface NodeOffer {
  runtimes?: readonly string[];
  resources?: { nanoCpus?: unknown; memoryBytes?: unknown } | null;
}

/** The runtimes a node says it has, once each in TASK_RUNTIMES' order; none (or "") is process only. */
function normalizeRuntimes(given: readonly string[] | undefined): TaskRuntime[] {
  const said = new Set((given ?? []).filter((r) => r !== ""));
  for (const r of said) {
    if (!(TASK_RUNTIMES as readonly string[]).includes(r)) throw invalid(`runtime "${r}" is not one vipmesh knows: give ${TASK_RUNTIMES.join(" or ")}`);
  }
  return said.size === 0 ? ["process"] : TASK_RUNTIMES.filter((r) => said.has(r));
}

/** The resources a node offers: whole numbers ≥ 0 (0: not said); undefined when it says neither. */
function normalizeNodeResources(given: NodeOffer["resources"]): Resources | undefined {
  const out: Resources = {};
  for (const field of ["nanoCpus", "memoryBytes"] as const) {
    const v = given?.[field] ?? 0;
    const n = typeof v === "string" ? Number(v) : v;
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) throw invalid(`node resources: ${field} ${String(v)} is not a whole number ≥ 0`);
    if (n > 0) out[field] = n;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

export class Cluster {
  constructor(
    readonly store: ClusterStore,
    private readonly allocator: Allocator,
    /** allowLoopbackNodes: the manager's --allow-loopback-nodes (every node on its machine). */
    private readonly options: { allowLoopbackNodes?: boolean } = {},
  ) {}

  // ---- networks ------------------------------------------------------------

  createNetwork(input: unknown): Promise<Network> {
    const spec = normalizeNetworkSpec(input as Parameters<typeof normalizeNetworkSpec>[0]);
    return this.store.update((tx) => {
      if (hasAny(tx.named("network", spec.name))) {
        throw alreadyExists(`network ${spec.name} already exists`);
      }
      if (spec.ingress && tx.ingressNetwork()) {
        throw alreadyExists("an ingress network already exists; there can be only one");
      }
      const id = newId();
      const { ipam, vni } = this.allocator.allocateNetwork(tx, id, spec);
      return tx.put("network", {
        id,
        version: 0,
        createdAt: "",
        updatedAt: "",
        spec,
        ipam,
        vni,
        encrypted: "encrypted" in spec.options,
      });
    });
  }

  /**
   * The routing mesh's network: made on the first start (`subnet`, 10.255.0.0/16
   * by default), kept as it is afterwards.
   */
  async ensureIngressNetwork(subnet: string = DEFAULT_INGRESS_SUBNET): Promise<Network> {
    return this.store.ingressNetwork() ?? this.createNetwork({ name: INGRESS_NETWORK, driver: "overlay", ingress: true, ipam: [{ subnet }] });
  }

  removeNetwork(ref: string): Promise<void> {
    return this.store.update((tx) => {
      const n = tx.mustFind("network", ref);
      if (n.spec.ingress) {
        throw precondition(`network ${n.spec.name} is the routing mesh, built into the cluster; it cannot be removed`);
      }
      const users = tx.list("service").filter((s) => s.spec.networks.some((a) => a.target === n.id));
      if (users.length > 0) {
        throw precondition(
          `network ${n.spec.name} is in use by service(s) ${users.map((s) => s.spec.annotations.name).join(", ")}; remove or update them first`,
        );
      }
      const attached = attachedTasks(tx.list("task"), n.id);
      if (attached.length > 0) {
        const stopping = attached.filter((t) => t.desiredState === "shutdown").length;
        throw precondition(
          `network ${n.spec.name} still has ${attached.length} task(s) attached` +
            (stopping > 0 ? ` (${stopping} being stopped: retry once they have gone)` : ""),
        );
      }
      this.allocator.releaseNetwork(tx, n);
      tx.remove("network", n.id);
    });
  }

  /**
   * Waits (bounded) until no task being stopped holds network `ref` — tasks
   * of a service that left it, still draining — so that a removal right
   * after (`docker service update --network-rm`, then `network rm`) does not
   * fail for them. Reads only: call it before queueing removeNetwork, which
   * then judges (and says what still holds the network after `timeoutMs`).
   * A removed service's tasks leave the store at once and never hold it.
   * Nothing to wait for when a service still names the network, or it is the
   * ingress: removeNetwork refuses those at once. The bound stays well under
   * a client's write deadline (the CLI's 30 s), so the client hears the refusal.
   */
  async networkDrained(ref: string, timeoutMs = 15_000): Promise<void> {
    const draining = () => {
      const n = tryFind(this.store, ref);
      if (n === undefined || n.spec.ingress) return false;
      if (this.store.list("service").some((s) => s.spec.networks.some((a) => a.target === n.id))) return false;
      return attachedTasks(this.store.list("task"), n.id).some((t) => t.desiredState === "shutdown");
    };
    if (!draining()) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        unsubscribe();
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      const unsubscribe = this.store.subscribe(() => {
        if (!draining()) done();
      });
    });
  }

  // ---- services ------------------------------------------------------------

  /**
   * Resolves network references (ID, prefix or name) to IDs; rejects
   * duplicates. The ingress network is not the user's to list: a service is
   * on it exactly while it publishes a port through the routing mesh (last, so
   * its own networks keep their interface names).
   */
  private resolveNetworks(tx: Tx, spec: ServiceSpec, creating: boolean): ServiceSpec {
    const attachments = spec.networks.map((a) => ({ ...a, target: tx.mustFind("network", a.target).id }));
    const ids = attachments.map((a) => a.target);
    if (new Set(ids).size !== ids.length) throw invalid("a network is given more than once");
    const ingress = tx.ingressNetwork();
    if (!ingress) return { ...spec, networks: attachments };
    if (creating && ids.includes(ingress.id)) {
      throw invalid(`network ${ingress.spec.name} is the routing mesh: a service joins it by publishing a port (--publish), not with --network`);
    }
    const own = attachments.filter((a) => a.target !== ingress.id);
    const mesh = spec.endpointSpec.ports.some((p) => p.publishMode === "ingress") ? [{ target: ingress.id }] : [];
    return { ...spec, networks: [...own, ...mesh] };
  }

  private allocateEndpoint(tx: Tx, spec: ServiceSpec, current: Service | undefined): Service["endpoint"] {
    const name = spec.annotations.name;
    const ports = this.allocator.allocatePorts(tx, name, spec.endpointSpec.ports, current?.endpoint.ports ?? []);
    const keep = spec.endpointSpec.mode === "vip" ? new Set(spec.networks.map((n) => n.target)) : new Set<string>();
    const virtualIps = [];
    for (const v of current?.endpoint.virtualIps ?? []) {
      if (keep.has(v.networkId)) virtualIps.push(this.allocator.keepVip(tx, v));
      else this.allocator.releaseVip(tx, v);
    }
    for (const networkId of keep) {
      if (!virtualIps.some((v) => v.networkId === networkId)) virtualIps.push(this.allocator.allocateVip(tx, networkId));
    }
    return { spec: spec.endpointSpec, ports, virtualIps };
  }

  createService(input: unknown): Promise<Service> {
    const normalized = normalizeServiceSpec(input as Parameters<typeof normalizeServiceSpec>[0]);
    return this.store.update((tx) => {
      const spec = this.resolveNetworks(tx, normalized, true);
      if (hasAny(tx.named("service", spec.annotations.name))) {
        throw alreadyExists(`service ${spec.annotations.name} already exists`);
      }
      checkDataplanesHonour(spec.endpointSpec, tx.all("node"));
      return tx.put("service", {
        id: newId(),
        version: 0,
        createdAt: "",
        updatedAt: "",
        spec,
        previousSpec: null,
        endpoint: this.allocateEndpoint(tx, spec, undefined),
        updateStatus: { state: "", startedAt: "", completedAt: "", message: "" },
        specVersion: 1,
      });
    });
  }

  updateService(ref: string, version: number, input: unknown): Promise<Service> {
    const normalized = normalizeServiceSpec(input as Parameters<typeof normalizeServiceSpec>[0]);
    return this.store.update((tx) => {
      const current = tx.mustFind("service", ref);
      checkVersion("service", current.spec.annotations.name, current.version, version);
      const spec = this.resolveNetworks(tx, normalized, false);
      if (spec.annotations.name !== current.spec.annotations.name) {
        throw invalid(`a service cannot be renamed (${current.spec.annotations.name} → ${spec.annotations.name})`);
      }
      if (Boolean(spec.global) !== Boolean(current.spec.global)) {
        throw invalid("a service's mode (replicated or global) cannot change; create a new service");
      }
      checkDataplanesHonour(spec.endpointSpec, tx.all("node"), current.spec.endpointSpec);
      return tx.put("service", this.withSpec(tx, current, spec, "updating"));
    });
  }

  /** `version`: the one the caller read, when it says (the Engine API's rollback does). */
  rollbackService(ref: string, version?: number): Promise<Service> {
    return this.store.update((tx) => {
      const current = tx.mustFind("service", ref);
      if (version !== undefined) checkVersion("service", current.spec.annotations.name, current.version, version);
      if (!current.previousSpec) {
        throw precondition(`service ${current.spec.annotations.name} has no previous spec to roll back to`);
      }
      return tx.put("service", this.withSpec(tx, current, current.previousSpec, "rollback_started"));
    });
  }

  /** The service with `spec` in force; a rolling update starts when the tasks' definition changed. */
  withSpec(tx: Tx, current: Service, spec: ServiceSpec, updateState: "updating" | "rollback_started"): Service {
    const replaceTasks = specDefinition(spec) !== specDefinition(current.spec);
    return {
      ...current,
      spec,
      previousSpec: current.spec,
      endpoint: this.allocateEndpoint(tx, spec, current),
      specVersion: replaceTasks ? current.specVersion + 1 : current.specVersion,
      updateStatus: replaceTasks
        ? { state: updateState, startedAt: tx.now, completedAt: "", message: updateMessage(updateState) }
        : current.updateStatus,
    };
  }

  removeService(ref: string): Promise<void> {
    return this.store.update((tx) => {
      const s = tx.mustFind("service", ref);
      for (const t of tx.tasksOfService(s.id)) {
        if (!isTerminal(t.status.state)) this.allocator.releaseTaskAddresses(tx, t);
        tx.remove("task", t.id);
      }
      this.allocator.releaseService(tx, s);
      tx.remove("service", s.id);
    });
  }

  /** VIPs stored before firewall marks were handed out get one (once, at start). */
  assignMissingFwmarks(): Promise<void> {
    return this.store.update((tx) => {
      for (const s of tx.list("service")) {
        if (s.endpoint.virtualIps.every((v) => v.fwmark)) continue;
        tx.put("service", { ...s, endpoint: { ...s.endpoint, virtualIps: s.endpoint.virtualIps.map((v) => this.allocator.keepVip(tx, v)) } });
      }
    });
  }

  // ---- nodes ---------------------------------------------------------------

  /**
   * Records a node's registration. `certified`: nodeId comes from the node's
   * certificate and is its only identity; otherwise (a manager with
   * --insecure) a known hostname keeps its node across agent restarts.
   * `labels` are the node's own (description.engineLabels, replaced each
   * time); its spec, the admin's labels included, is not the node's to change.
   * `dataplane` "" is nftables; `offer` says the task runtimes the node has
   * (none: process only) and the resources it offers reservations.
   */
  async registerNode(
    hostname: string,
    addr: string,
    nodeId: string,
    labels: Record<string, string>,
    dataplane = "",
    certified = false,
    offer: NodeOffer = {},
  ): Promise<Node> {
    if (nodeId && this.store.removedNodes.has(nodeId)) throw nodeRemoved(nodeId);
    if (!/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,251}[a-zA-Z0-9])?$/.test(hostname)) {
      throw invalid(`hostname "${hostname}" is not a valid host name`);
    }
    validateAdvertiseAddress(addr, this.options.allowLoopbackNodes ?? false);
    const resources = normalizeNodeResources(offer.resources);
    const description: Node["description"] = {
      hostname,
      dataplane: normalizeDataplane(dataplane),
      engineLabels: normalizeNodeLabels("engine labels", labels),
      runtimes: normalizeRuntimes(offer.runtimes),
      ...(resources ? { resources } : {}),
    };
    return this.store.update((tx) => {
      const known =
        (nodeId ? tx.get("node", nodeId) : undefined) ??
        (certified ? undefined : first(tx.named("node", hostname), () => true));
      const clash = first(tx.all("node"), (n) => n.status.addr === addr && n.id !== known?.id && n.status.state !== "down");
      if (clash) throw alreadyExists(`address ${addr} is already used by node ${clash.description.hostname}`);
      checkNodeAddress(addr, tx.list("network"));
      // a down node's hostname may be taken: its record stays as it is, until `vipmesh node rm`
      const namesake = first(tx.named("node", hostname), (n) => n.id !== known?.id && n.status.state !== "down");
      if (namesake) {
        throw alreadyExists(`node ${namesake.id} already has hostname ${hostname}; remove it with \`vipmesh node rm\` or pick another hostname`);
      }
      // every node carries the routing mesh: its ingress sandbox gets an address on the ingress network once
      const ingress = tx.ingressNetwork();
      const ingressAddr = known?.status.ingressAddr || (ingress ? this.ingressAddressFor(tx, ingress.id) : "");
      if (known) {
        return tx.put("node", {
          ...known,
          description,
          status: { ...known.status, addr, ingressAddr },
        });
      }
      return tx.put("node", {
        id: nodeId || newId(),
        version: 0,
        createdAt: "",
        updatedAt: "",
        spec: { labels: {}, availability: "active" },
        description,
        status: { state: "unknown", message: "registered, waiting for its session", addr, ingressAddr },
      });
    });
  }

  /**
   * A node's ingress sandbox address; "" when the ingress network is full: the
   * node registers all the same (and carries no mesh until a later registration finds one).
   */
  private ingressAddressFor(tx: Tx, ingressId: string): string {
    try {
      return this.allocator.allocateAddress(tx, ingressId);
    } catch (e) {
      if (e instanceof VipmeshError && e.code === "resource_exhausted") return "";
      throw e;
    }
  }

  /** Tasks being stopped that no agent balances new connections to any more. */
  markDrained(taskIds: string[]): Promise<void> {
    return this.store.update((tx) => {
      for (const id of taskIds) {
        const t = tx.get("task", id);
        if (t && !t.drained && t.desiredState === "shutdown") tx.put("task", { ...t, drained: true });
      }
    });
  }

  setNodeState(nodeId: string, state: Node["status"]["state"], message: string): Promise<void> {
    return this.store.update((tx) => {
      const n = tx.get("node", nodeId);
      if (!n || (n.status.state === state && n.status.message === message)) return;
      tx.put("node", { ...n, status: { ...n.status, state, message } });
      if (n.status.state === "down" && state === "ready") reclaimOrphans(tx, this.allocator, nodeId);
    });
  }

  updateNode(ref: string, version: number, input: Partial<NodeSpec> | null): Promise<Node> {
    return this.store.update((tx) => {
      const n = tx.mustFind("node", ref);
      checkVersion("node", n.description.hostname, n.version, version);
      return tx.put("node", { ...n, spec: normalizeNodeSpec(input, n.spec) });
    });
  }

  removeNode(ref: string, force: boolean): Promise<void> {
    return this.store.update((tx) => {
      const n = tx.mustFind("node", ref);
      if (n.status.state === "ready" && !force) {
        throw precondition(
          `node ${n.description.hostname} is ready; drain it and stop its agent first, or use --force`,
        );
      }
      for (const t of tx.tasksOfNode(n.id)) {
        if (!isTerminal(t.status.state)) this.allocator.releaseTaskAddresses(tx, t);
        tx.remove("task", t.id);
      }
      const ingress = tx.ingressNetwork();
      if (ingress && n.status.ingressAddr) this.allocator.releaseAddress(tx, ingress.id, n.status.ingressAddr);
      tx.remove("node", n.id);
      this.store.removedNodes.add(tx, n.id);
    });
  }

  // ---- tasks ---------------------------------------------------------------

  /** An agent's report on one of its tasks. States only move forward. */
  reportTaskStatus(
    nodeId: string,
    taskId: string,
    status: { state?: string; message?: string; err?: string; health?: string },
  ): Promise<void> {
    return this.store.update((tx) => {
      const t = tx.get("task", taskId);
      if (!t) return; // removed meanwhile: the agent learns from its next assignment
      if (t.nodeId !== nodeId) throw precondition(`task ${taskId} is not assigned to node ${nodeId}`);
      const state = status.state as Task["status"]["state"];
      if (!TASK_STATES.includes(state)) throw invalid(`task state "${status.state}" is unknown`);
      if (isTerminal(t.status.state)) return;
      const order = TASK_STATES.indexOf(state);
      if (order < TASK_STATES.indexOf(t.status.state) && !isTerminal(state)) return;
      const health = (status.health ?? t.status.health) as TaskStatus["health"];
      if (!["", "starting", "healthy", "unhealthy"].includes(health)) throw invalid(`task health "${health}" is unknown`);
      if (state === t.status.state && health === t.status.health && (status.message ?? "") === t.status.message) return;
      if (isTerminal(state)) this.allocator.releaseTaskAddresses(tx, t);
      tx.put("task", {
        ...t,
        // a task that ended never runs again: nothing wants it running (`service ps`), its slot gets a new one
        desiredState: isTerminal(state) ? "shutdown" : t.desiredState,
        status: { state, timestamp: tx.now, message: status.message ?? "", err: status.err ?? "", health },
      });
    });
  }
}

function first<T>(items: Iterable<T>, match: (item: T) => boolean): T | undefined {
  for (const item of items) if (match(item)) return item;
  return undefined;
}

const hasAny = (items: Iterable<unknown>): boolean => first(items, () => true) !== undefined;

/** Tasks that hold an address on the network: not yet ended. */
const attachedTasks = (tasks: Task[], networkId: string): Task[] =>
  tasks.filter((t) => !isTerminal(t.status.state) && t.networks.some((a) => a.networkId === networkId));

function tryFind(store: ClusterStore, ref: string): Network | undefined {
  try {
    return store.mustFind("network", ref);
  } catch {
    return undefined;
  }
}

function checkVersion(kind: string, name: string, actual: number, given: number): void {
  if (actual !== given) {
    // swarm's words, which the docker CLI and scripts know
    throw new VipmeshError(
      "aborted",
      `update out of sequence: ${kind} ${name} changed since it was read (version ${given}, now ${actual}); read it again and retry`,
    );
  }
}

/** Docker's words; a rollback the failure action starts gets its own (orchestrator's watchUpdateFailures). */
function updateMessage(state: "updating" | "rollback_started"): string {
  return state === "updating" ? "update in progress" : "manually requested rollback";
}
