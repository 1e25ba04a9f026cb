// Wire objects → the JSON documents `docker ... inspect` prints, so tools and
// habits written for Docker (jq paths, field names) carry over. Pure.

import type { wire } from "@vipmesh/api";
import { isTaskReady } from "@vipmesh/core";

type ServiceSpec = wire.ServiceSpec;
type TaskSpec = NonNullable<ServiceSpec["taskTemplate"]>;
type ResourceLimits = NonNullable<NonNullable<TaskSpec["resources"]>["limits"]>;
type UpdateConfig = NonNullable<ServiceSpec["updateConfig"]>;
type EndpointSpec = NonNullable<ServiceSpec["endpointSpec"]>;
type PortConfig = EndpointSpec["ports"][number];
type Endpoint = NonNullable<wire.Service["endpoint"]>;
type UpdateStatus = NonNullable<wire.Service["updateStatus"]>;

/** Docker gives durations in nanoseconds. */
const nanoseconds = (ms: number): number => ms * 1_000_000;

export const isGlobalMode = (spec: ServiceSpec | null): boolean =>
  spec?.mode ? spec.mode === "global" : Boolean(spec?.global);

export function portJson(p: PortConfig) {
  return {
    Protocol: p.protocol,
    TargetPort: p.targetPort,
    // omitted when 0, like docker's omitempty: a spec port still to be assigned
    ...(p.publishedPort ? { PublishedPort: p.publishedPort } : {}),
    PublishMode: p.publishMode,
    ...(p.proxyProtocol ? { ProxyProtocol: p.proxyProtocol } : {}),
  };
}

function updateConfigJson(c: UpdateConfig | null) {
  return {
    Parallelism: c?.parallelism ?? 0,
    Delay: nanoseconds(c?.delayMs ?? 0),
    FailureAction: c?.failureAction ?? "",
    Monitor: nanoseconds(c?.monitorMs ?? 0),
    Order: c?.order ?? "",
  };
}

/** Docker's fields, then vipmesh's load-balancing ones (which Docker lacks) where they differ from the default. */
function endpointSpecJson(e: EndpointSpec | null) {
  const weights = e?.lbWeights ?? {};
  const affinity = e?.lbAffinity === "client-ip";
  return {
    Mode: e?.mode ?? "",
    Ports: (e?.ports ?? []).map(portJson),
    ...(e?.lbScheduler ? { LbScheduler: e.lbScheduler } : {}),
    ...(Object.keys(weights).length > 0 ? { LbWeights: weights } : {}),
    ...(affinity ? { LbAffinity: e.lbAffinity, LbAffinityTimeout: nanoseconds(e.lbAffinityTimeoutS * 1000) } : {}),
  };
}

/** Docker's Resources.Limits, with only the limits that are set (omitempty): undefined for none. */
function limitsJson(l: ResourceLimits | null | undefined) {
  const limits = {
    ...(l?.nanoCpus ? { NanoCPUs: l.nanoCpus } : {}),
    ...(l?.memoryBytes ? { MemoryBytes: l.memoryBytes } : {}),
    ...(l?.pids ? { Pids: l.pids } : {}),
  };
  return Object.keys(limits).length > 0 ? limits : undefined;
}

export function taskSpecJson(t: TaskSpec | null) {
  const container = t?.container;
  const check = container?.healthcheck;
  const limits = limitsJson(t?.resources?.limits);
  return {
    ContainerSpec: {
      // There is no image: the whole command line is the entrypoint, docker's Command.
      Command: container?.command ?? [],
      Env: container?.env ?? [],
      ...(container?.user ? { User: container.user } : {}),
      ...(check && check.test.length > 0
        ? {
            Healthcheck: {
              Test: ["CMD", ...check.test],
              Interval: nanoseconds(check.intervalMs),
              Timeout: nanoseconds(check.timeoutMs),
              Retries: check.retries,
              StartPeriod: nanoseconds(check.startPeriodMs),
            },
          }
        : {}),
      ...(container?.capabilityAdd?.length ? { CapabilityAdd: container.capabilityAdd } : {}),
      ...(container?.capabilityDrop?.length ? { CapabilityDrop: container.capabilityDrop } : {}),
    },
    ...(limits ? { Resources: { Limits: limits } } : {}),
    Placement: { Constraints: t?.placement?.constraints ?? [] },
    ForceUpdate: t?.forceUpdate ?? 0,
  };
}

export function serviceSpecJson(spec: ServiceSpec | null) {
  return {
    Name: spec?.annotations?.name ?? "",
    Labels: spec?.annotations?.labels ?? {},
    TaskTemplate: taskSpecJson(spec?.taskTemplate ?? null),
    Mode: isGlobalMode(spec) ? { Global: {} } : { Replicated: { Replicas: spec?.replicated?.replicas ?? 0 } },
    UpdateConfig: updateConfigJson(spec?.updateConfig ?? null),
    RollbackConfig: updateConfigJson(spec?.rollbackConfig ?? null),
    Networks: (spec?.networks ?? []).map((n) => ({ Target: n.target })),
    EndpointSpec: endpointSpecJson(spec?.endpointSpec ?? null),
  };
}

/**
 * What a task sees as the peer of a published connection (not in docker's
 * shape: swarm users asked where their clients' addresses went).
 */
export const clientAddressOf = (p: PortConfig): string =>
  p.publishMode === "host"
    ? "kept: the task sees the client's own address"
    : p.proxyProtocol
      ? `sent: the task gets it in a PROXY protocol ${p.proxyProtocol} header, on a connection from the ingress sandbox`
      : "replaced: the task sees the ingress sandbox of the node the client reached";

function endpointJson(e: Endpoint | null) {
  return {
    Spec: endpointSpecJson(e?.spec ?? null),
    Ports: (e?.ports ?? []).map((p) => ({ ...portJson(p), ClientAddress: clientAddressOf(p) })),
    VirtualIPs: (e?.virtualIps ?? []).map((v) => ({ NetworkID: v.networkId, Addr: v.addr })),
  };
}

function updateStatusJson(u: UpdateStatus) {
  return { State: u.state, StartedAt: u.startedAt, CompletedAt: u.completedAt, Message: u.message };
}

export function serviceJson(s: wire.Service) {
  return {
    ID: s.id,
    Version: { Index: s.version },
    CreatedAt: s.createdAt,
    UpdatedAt: s.updatedAt,
    Spec: serviceSpecJson(s.spec),
    ...(s.previousSpec ? { PreviousSpec: serviceSpecJson(s.previousSpec) } : {}),
    Endpoint: endpointJson(s.endpoint),
    ...(s.updateStatus?.state ? { UpdateStatus: updateStatusJson(s.updateStatus) } : {}),
  };
}

export const VXLANID_OPTION = "com.docker.network.driver.overlay.vxlanid_list";

export function networkJson(n: wire.Network) {
  const options: Record<string, string> = { [VXLANID_OPTION]: String(n.vni), ...n.spec?.options };
  if (n.encrypted && !("encrypted" in options)) options.encrypted = "";
  return {
    Name: n.spec?.name ?? "",
    Id: n.id,
    Created: n.createdAt,
    Scope: "swarm",
    Driver: n.spec?.driver || "overlay",
    IPAM: {
      Driver: "default",
      Config: n.ipam?.subnet ? [{ Subnet: n.ipam.subnet, Gateway: n.ipam.gateway }] : [],
    },
    Options: options,
    Labels: n.spec?.labels ?? {},
    Ingress: n.spec?.ingress ?? false,
  };
}

/**
 * `network inspect --verbose`: per service on the network, its VIP and its
 * backends with their state, in the shape of Docker's `network inspect -v`
 * (plus `State`, `Health` and `Ready`: whether it takes new connections).
 */
export function networkServicesJson(
  n: wire.Network,
  services: readonly wire.Service[],
  tasks: readonly wire.Task[],
  nodes: readonly wire.Node[],
) {
  const nodeAddr = new Map(nodes.map((x) => [x.id, x.status?.addr ?? ""]));
  const out: Record<string, unknown> = {};
  for (const s of services) {
    if (!s.spec?.networks.some((a) => a.target === n.id)) continue;
    const vip = s.endpoint?.virtualIps.find((v) => v.networkId === n.id)?.addr.split("/")[0] ?? "";
    const backends = tasks
      .filter((t) => t.serviceId === s.id && !["complete", "shutdown", "failed", "rejected", "orphaned"].includes(t.status?.state ?? ""))
      .sort((a, b) => a.slot - b.slot)
      .map((t) => {
        const health = t.status?.health ?? "";
        return {
          Name: `${t.serviceName}.${t.slot || t.nodeId}.${t.id}`,
          EndpointIP: t.networks.find((a) => a.networkId === n.id)?.addresses[0]?.split("/")[0] ?? "",
          Info: { "Host IP": nodeAddr.get(t.nodeId) ?? "" },
          State: t.status?.state ?? "",
          Health: health,
          Ready: isTaskReady(t),
        };
      });
    out[s.spec.annotations?.name ?? s.id] = {
      VIP: vip,
      EndpointMode: s.spec.endpointSpec?.mode ?? "vip",
      Ports: (s.endpoint?.ports ?? []).map((p) => `${p.protocol}/${p.targetPort}:${p.publishedPort}`),
      Tasks: backends,
    };
  }
  return out;
}

/** `networkNames` (ID → name) fills in each attachment's network name where known. */
export function taskJson(t: wire.Task, networkNames: ReadonlyMap<string, string> = new Map()) {
  const health = t.status?.health;
  return {
    ID: t.id,
    Version: { Index: t.version },
    CreatedAt: t.createdAt,
    UpdatedAt: t.updatedAt,
    Spec: taskSpecJson(t.spec),
    ServiceID: t.serviceId,
    Slot: t.slot,
    NodeID: t.nodeId,
    Status: {
      Timestamp: t.status?.timestamp ?? "",
      State: t.status?.state ?? "",
      Message: t.status?.message ?? "",
      Err: t.status?.err ?? "",
      ...(health ? { Health: health } : {}),
    },
    DesiredState: t.desiredState,
    NetworksAttachments: t.networks.map((a) => {
      const name = networkNames.get(a.networkId);
      return { Network: { ID: a.networkId, ...(name ? { Name: name } : {}) }, Addresses: a.addresses };
    }),
  };
}

export function nodeJson(n: wire.Node) {
  return {
    ID: n.id,
    Version: { Index: n.version },
    CreatedAt: n.createdAt,
    UpdatedAt: n.updatedAt,
    Spec: { Labels: n.spec?.labels ?? {}, Availability: n.spec?.availability ?? "" },
    Description: {
      Hostname: n.description?.hostname ?? "",
      Dataplane: n.description?.dataplane || "nftables",
      // the node's own labels (engine.labels.K), apart from the admin's Spec.Labels (node.labels.K)
      Engine: { Labels: n.description?.engineLabels ?? {} },
    },
    Status: { State: n.status?.state ?? "", Message: n.status?.message ?? "", Addr: n.status?.addr ?? "" },
  };
}
