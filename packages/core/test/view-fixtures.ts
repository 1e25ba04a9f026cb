// Builders of network-view pieces for core's tests: the fields no test cares
// about filled in once.

import type { ViewEndpoint, ViewService } from "../src/network-view.ts";

/** A service with a VIP per network (`{ network: "a.b.c.d/len" }`). */
export const viewService = (id: string, name: string, vips: Record<string, string>, endpointMode = "vip"): ViewService => ({
  id,
  name,
  endpointMode,
  ports: [],
  virtualIps: Object.entries(vips).map(([networkId, addr]) => ({ networkId, addr })),
  lbScheduler: "",
});

/** A task's endpoint on one network, weight 1, on `nodeId` (192.168.0.<its last digit>). */
export const viewEndpoint = (taskId: string, serviceId: string, networkId: string, addr: string, ready = true, nodeId = "n1"): ViewEndpoint => ({
  key: `${taskId}/${networkId}`,
  taskId,
  serviceId,
  networkId,
  addr,
  mac: "02:42:00:00:00:00",
  nodeId,
  nodeAddr: `192.168.0.${nodeId.replace(/\D/g, "") || "1"}`,
  ready,
  weight: 1,
});
