// Hand-built wire objects, shaped as the generated __Output types (every field present).

import type { wire } from "@vipmesh/api";

type ServiceSpec = wire.ServiceSpec;

export const NETWORK_ID = "n1a2b3c4d5e6f7g8h9i0j1k2l";
export const SERVICE_ID = "s1a2b3c4d5e6f7g8h9i0j1k2l";
export const NODE_ID = "h1a2b3c4d5e6f7g8h9i0j1k2l";

export function serviceSpec(overrides: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    annotations: { name: "collabweb", labels: { team: "web" } },
    taskTemplate: {
      container: {
        image: "",
        command: ["vipmesh", "whoami", "--port", "80"],
        args: [],
        hostname: "",
        dir: "",
        labels: {},
        env: ["A=1", "B=2"],
        healthcheck: null,
        user: "",
        capabilityAdd: [],
        capabilityDrop: [],
      },
      resources: null,
      placement: { constraints: ["node.labels.zone==a"] },
      forceUpdate: 0,
      restartPolicy: null,
    },
    replicated: { replicas: 3 },
    mode: "replicated",
    networks: [{ target: NETWORK_ID, aliases: [] }],
    endpointSpec: {
      mode: "vip",
      ports: [{ protocol: "tcp", targetPort: 80, publishedPort: 0, publishMode: "ingress", proxyProtocol: "" }],
      lbScheduler: "",
      lbWeights: {},
      lbAffinity: "none",
      lbAffinityTimeoutS: 0,
    },
    updateConfig: { parallelism: 1, delayMs: 10_000, failureAction: "pause", monitorMs: 5000, order: "stop-first" },
    rollbackConfig: { parallelism: 1, delayMs: 0, failureAction: "pause", monitorMs: 5000, order: "stop-first" },
    ...overrides,
  };
}

export function service(overrides: Partial<wire.Service> = {}): wire.Service {
  return {
    id: SERVICE_ID,
    version: 7,
    createdAt: "2025-01-01T00:00:00.000Z",
    updatedAt: "2025-01-01T00:00:05.000Z",
    spec: serviceSpec(),
    previousSpec: null,
    endpoint: {
      spec: serviceSpec().endpointSpec,
      ports: [{ protocol: "tcp", targetPort: 80, publishedPort: 30000, publishMode: "ingress", proxyProtocol: "" }],
      virtualIps: [{ networkId: NETWORK_ID, addr: "10.0.1.2/24", fwmark: 256 }],
    },
    updateStatus: { state: "", startedAt: "", completedAt: "", message: "", failedUpdate: false },
    specVersion: 1,
    ...overrides,
  };
}

export function network(overrides: Partial<wire.Network> = {}): wire.Network {
  return {
    id: NETWORK_ID,
    version: 2,
    createdAt: "2025-01-01T00:00:00.000Z",
    updatedAt: "2025-01-01T00:00:00.000Z",
    spec: { name: "appnet", driver: "overlay", labels: { env: "lab" }, options: {}, ipam: [], ingress: false },
    ipam: { subnet: "10.0.1.0/24", gateway: "10.0.1.1" },
    vni: 4097,
    encrypted: false,
    ...overrides,
  };
}

export function task(overrides: Partial<wire.Task> = {}): wire.Task {
  return {
    id: "t1a2b3c4d5e6f7g8h9i0j1k2l",
    version: 3,
    createdAt: "2025-01-01T00:00:00.000Z",
    updatedAt: "2025-01-01T00:00:02.000Z",
    serviceId: SERVICE_ID,
    serviceName: "collabweb",
    slot: 1,
    drained: false,
    nodeId: NODE_ID,
    specVersion: 1,
    spec: serviceSpec().taskTemplate,
    desiredState: "running",
    status: { state: "running", timestamp: "2025-01-01T00:00:02.000Z", message: "started", err: "", health: "" },
    networks: [{ networkId: NETWORK_ID, addresses: ["10.0.1.5/24"] }],
    hostPorts: [],
    ...overrides,
  };
}

export function node(overrides: Partial<wire.Node> = {}): wire.Node {
  return {
    id: NODE_ID,
    version: 4,
    createdAt: "2025-01-01T00:00:00.000Z",
    updatedAt: "2025-01-01T00:00:00.000Z",
    spec: { labels: { zone: "a" }, availability: "active" },
    description: { hostname: "node-1", dataplane: "nftables", engineLabels: { disk: "ssd" }, runtimes: ["process"], resources: null },
    status: { state: "ready", message: "", addr: "192.168.50.11", ingressAddr: "10.255.0.2/16" },
    ...overrides,
  };
}
