// Networks in Docker's JSON (docker network ls/inspect), and Docker's
// NetworkCreateRequest back to vipmesh's NetworkSpec: one mapping, both
// ways. Pure.

import { invalid, isTaskReady, isTerminal, type Network, type NetworkSpec, type Node, type Service, type Task, type TaskState, taskName } from "@vipmesh/core";
import type { Loose } from "./task.ts";

export const VXLANID_OPTION = "com.docker.network.driver.overlay.vxlanid_list";

export function networkJson(n: Loose<Network>) {
  const options: Record<string, string> = { [VXLANID_OPTION]: String(n.vni ?? 0), ...n.spec?.options };
  if (n.encrypted && !("encrypted" in options)) options.encrypted = "";
  return {
    Name: n.spec?.name ?? "",
    Id: n.id ?? "",
    Created: n.createdAt ?? "",
    Scope: "swarm",
    Driver: n.spec?.driver || "overlay",
    EnableIPv4: true,
    EnableIPv6: false,
    IPAM: {
      Driver: "default",
      Options: null,
      Config: n.ipam?.subnet ? [{ Subnet: n.ipam.subnet, Gateway: n.ipam.gateway ?? "" }] : [],
    },
    Internal: false,
    Attachable: false,
    Ingress: n.spec?.ingress ?? false,
    ConfigFrom: { Network: "" },
    ConfigOnly: false,
    Containers: {},
    Options: options,
    Labels: n.spec?.labels ?? {},
  };
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** A field that must be a string map (Labels, Options) when present. */
function stringMap(field: string, v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (!isObject(v) || Object.values(v).some((x) => typeof x !== "string")) throw invalid(`${field} must be an object of strings`);
  return v as Record<string, string>;
}

/**
 * Docker's NetworkCreateRequest → the spec vipmesh validates (core's
 * normalizeNetworkSpec decides the rest). What vipmesh does not do is refused
 * by name, never dropped.
 */
export function networkSpecFromDocker(body: unknown): Partial<NetworkSpec> {
  if (!isObject(body)) throw invalid("the network create request must be a JSON object");
  const { Name, Driver, Scope, IPAM, Options, Labels, Attachable, Internal, EnableIPv6, Ingress, ConfigOnly, ConfigFrom } = body;
  if (typeof Name !== "string" || Name === "") throw invalid("Name is required: the network's name");
  if (Driver !== undefined && Driver !== "" && Driver !== "overlay") {
    throw invalid(`driver "${String(Driver)}" is not supported: vipmesh networks use only the overlay driver (-d overlay)`);
  }
  if (Scope !== undefined && Scope !== "" && Scope !== "swarm") throw invalid(`scope "${String(Scope)}" is not supported: vipmesh networks are swarm-scoped`);
  if (Attachable === true) throw invalid("attachable networks are not supported: vipmesh networks carry services' tasks only (drop --attachable)");
  if (Internal === true) throw invalid("internal networks are not supported: vipmesh overlays have no external gateway to remove anyway (drop --internal)");
  if (EnableIPv6 === true) throw invalid("IPv6 is not supported on vipmesh overlays (drop --ipv6)");
  if (Ingress === true) throw invalid("the cluster has its ingress network already (the routing mesh); another cannot be made");
  if (ConfigOnly === true || (isObject(ConfigFrom) && ConfigFrom.Network)) throw invalid("config-only networks (--config-only, --config-from) are not supported");
  let ipam: { subnet: string; gateway: string }[] = [];
  if (IPAM !== undefined && IPAM !== null) {
    if (!isObject(IPAM)) throw invalid("IPAM must be an object");
    if (IPAM.Driver && IPAM.Driver !== "default") throw invalid(`IPAM driver "${String(IPAM.Driver)}" is not supported: only the default one`);
    const config = IPAM.Config ?? [];
    if (!Array.isArray(config)) throw invalid("IPAM.Config must be a list");
    ipam = config.map((c: unknown, i) => {
      if (!isObject(c)) throw invalid(`IPAM.Config[${i}] must be an object`);
      if (c.IPRange) throw invalid("an IP range (--ip-range) is not supported: tasks take addresses from the whole subnet");
      if (isObject(c.AuxiliaryAddresses) && Object.keys(c.AuxiliaryAddresses).length > 0) throw invalid("auxiliary addresses (--aux-address) are not supported");
      if (c.Subnet !== undefined && typeof c.Subnet !== "string") throw invalid(`IPAM.Config[${i}].Subnet must be a string (CIDR)`);
      if (c.Gateway !== undefined && typeof c.Gateway !== "string") throw invalid(`IPAM.Config[${i}].Gateway must be a string`);
      return { subnet: c.Subnet ?? "", gateway: c.Gateway ?? "" };
    });
  }
  return { name: Name, driver: "overlay", labels: stringMap("Labels", Labels), options: stringMap("Options", Options), ipam, ingress: false };
}

/**
 * `network inspect --verbose`: per service on the network, its VIP and its
 * backends with their state, in the shape of Docker's `network inspect -v`
 * (plus `State`, `Health` and `Ready`: whether it takes new connections).
 */
export function networkServicesJson(
  n: Loose<Network>,
  services: readonly Loose<Service>[],
  tasks: readonly Loose<Task>[],
  nodes: readonly Loose<Node>[],
) {
  const nodeAddr = new Map(nodes.map((x) => [x.id, x.status?.addr ?? ""]));
  const out: Record<string, unknown> = {};
  for (const s of services) {
    if (!s.spec?.networks?.some((a) => a.target === n.id)) continue;
    const vip = s.endpoint?.virtualIps?.find((v) => v.networkId === n.id)?.addr?.split("/")[0] ?? "";
    const backends = tasks
      .filter((t) => t.serviceId === s.id && !isTerminal((t.status?.state ?? "new") as TaskState))
      .sort((a, b) => (a.slot ?? 0) - (b.slot ?? 0))
      .map((t) => ({
        Name: `${taskName({ serviceName: t.serviceName ?? "", slot: t.slot ?? 0, nodeId: t.nodeId ?? "" })}.${t.id}`,
        EndpointIP: t.networks?.find((a) => a.networkId === n.id)?.addresses?.[0]?.split("/")[0] ?? "",
        Info: { "Host IP": nodeAddr.get(t.nodeId) ?? "" },
        State: t.status?.state ?? "",
        Health: t.status?.health ?? "",
        Ready: isTaskReady(t),
      }));
    out[s.spec.annotations?.name ?? s.id ?? ""] = {
      VIP: vip,
      EndpointMode: s.spec.endpointSpec?.mode ?? "vip",
      Ports: (s.endpoint?.ports ?? []).map((p) => `${p.protocol}/${p.targetPort}:${p.publishedPort}`),
      Tasks: backends,
    };
  }
  return out;
}
