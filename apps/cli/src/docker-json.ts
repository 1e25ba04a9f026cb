// Wire networks and nodes → the JSON documents `docker ... inspect` prints, so
// tools and habits written for Docker (jq paths, field names) carry over. Pure.
// Services and tasks: @vipmesh/engine-api's mappings (the Engine API's own).

import type { wire } from "@vipmesh/api";
import { isTaskReady } from "@vipmesh/core";

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
