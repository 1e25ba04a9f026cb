import { describe, expect, it } from "vitest";
import { NETWORK_ID, NODE_ID, SERVICE_ID, network, node, service, serviceSpec, task } from "../test/wire-fixtures.ts";
// The CLI's decoded wire objects through the Engine API's mappings: `vipmesh … inspect` prints what `docker … inspect` would.
import { isGlobalMode, networkJson, networkServicesJson, nodeJson, serviceJson, taskJson } from "@vipmesh/engine-api";

describe("serviceJson", () => {
  it("maps a replicated service to docker's shape", () => {
    expect(serviceJson(service())).toEqual({
      ID: SERVICE_ID,
      Version: { Index: 7 },
      CreatedAt: "2025-01-01T00:00:00.000Z",
      UpdatedAt: "2025-01-01T00:00:05.000Z",
      Spec: {
        Name: "collabweb",
        Labels: { team: "web" },
        TaskTemplate: {
          ContainerSpec: { Command: ["vipmesh", "whoami", "--port", "80"], Env: ["A=1", "B=2"] },
          Placement: { Constraints: ["node.labels.zone==a"] },
          ForceUpdate: 0,
          // Docker's place for the networks (the top-level Networks below is its deprecated one)
          Networks: [{ Target: NETWORK_ID }],
        },
        Mode: { Replicated: { Replicas: 3 } },
        UpdateConfig: {
          Parallelism: 1,
          Delay: 10_000_000_000,
          FailureAction: "pause",
          Monitor: 5_000_000_000,
          MaxFailureRatio: 0,
          Order: "stop-first",
        },
        RollbackConfig: { Parallelism: 1, Delay: 0, FailureAction: "pause", Monitor: 5_000_000_000, MaxFailureRatio: 0, Order: "stop-first" },
        Networks: [{ Target: NETWORK_ID }],
        EndpointSpec: { Mode: "vip", Ports: [{ Protocol: "tcp", TargetPort: 80, PublishMode: "ingress" }] },
      },
      Endpoint: {
        Spec: { Mode: "vip", Ports: [{ Protocol: "tcp", TargetPort: 80, PublishMode: "ingress" }] },
        Ports: [{ Protocol: "tcp", TargetPort: 80, PublishedPort: 30000, PublishMode: "ingress", ClientAddress: expect.stringMatching(/^replaced/) }],
        VirtualIPs: [{ NetworkID: NETWORK_ID, Addr: "10.0.1.2/24" }],
      },
    });
  });

  it("adds vipmesh's load-balancing settings (Docker has none) where they are not the defaults", () => {
    const endpointSpec = {
      mode: "vip",
      ports: [],
      lbScheduler: "rr",
      lbWeights: { "2": 3 },
      lbAffinity: "client-ip",
      lbAffinityTimeoutS: 600,
    };
    const json = serviceJson(service({ spec: serviceSpec({ endpointSpec }) }));
    expect(json.Spec.EndpointSpec).toEqual({
      Mode: "vip",
      Ports: [],
      LbScheduler: "rr",
      LbWeights: { "2": 3 },
      LbAffinity: "client-ip",
      LbAffinityTimeout: 600_000_000_000,
    });
    const none = serviceJson(service({ spec: serviceSpec({ endpointSpec: { ...endpointSpec, lbScheduler: "", lbWeights: {}, lbAffinity: "none", lbAffinityTimeoutS: 0 } }) }));
    expect(none.Spec.EndpointSpec).toEqual({ Mode: "vip", Ports: [] });
  });

  it("gives global mode, a previous spec, an update status and a health check when present", () => {
    const global = serviceSpec({ mode: "global", global: {}, replicated: undefined });
    const withCheck = serviceSpec({
      taskTemplate: {
        container: {
          image: "",
          command: ["web"],
          args: [],
          hostname: "",
          dir: "",
          labels: {},
          env: [],
          healthcheck: { test: ["curl", "-f", "localhost"], intervalMs: 1000, timeoutMs: 500, retries: 3, startPeriodMs: 0 },
          user: "",
          capabilityAdd: [],
          capabilityDrop: [],
        },
        resources: null,
        placement: { constraints: [] },
        forceUpdate: 2,
        restartPolicy: null,
      },
    });
    const json = serviceJson(
      service({
        spec: global,
        previousSpec: withCheck,
        updateStatus: { state: "paused", startedAt: "a", completedAt: "", message: "task failed", failedUpdate: false },
      }),
    );
    expect(json.Spec.Mode).toEqual({ Global: {} });
    expect(json.PreviousSpec?.TaskTemplate).toEqual({
      ContainerSpec: {
        Command: ["web"],
        Env: [],
        Healthcheck: { Test: ["CMD", "curl", "-f", "localhost"], Interval: 1e9, Timeout: 5e8, Retries: 3, StartPeriod: 0 },
      },
      Placement: { Constraints: [] },
      ForceUpdate: 2,
      Networks: [{ Target: NETWORK_ID }],
    });
        // a time not set is left out, as Docker's (an empty string would not decode in the docker CLI)
    expect(json.UpdateStatus).toEqual({ State: "paused", StartedAt: "a", Message: "task failed" });
  });

  it("gives the user, capabilities and limits in Docker's places, and leaves out those not set", () => {
    const template = serviceSpec().taskTemplate!;
    const confined = serviceSpec({
      taskTemplate: {
        ...template,
        container: { ...template.container!, user: "1000:1000", capabilityAdd: ["CAP_NET_ADMIN"], capabilityDrop: ["ALL"] },
        resources: { limits: { nanoCpus: 500_000_000, memoryBytes: 536_870_912, pids: 0 }, reservations: null },
      },
    });
    const json = serviceJson(service({ spec: confined }));
    expect(json.Spec.TaskTemplate).toEqual({
      ContainerSpec: {
        Command: ["vipmesh", "whoami", "--port", "80"],
        Env: ["A=1", "B=2"],
        User: "1000:1000",
        CapabilityAdd: ["CAP_NET_ADMIN"],
        CapabilityDrop: ["ALL"],
      },
      Resources: { Limits: { NanoCPUs: 500_000_000, MemoryBytes: 536_870_912 } },
      Placement: { Constraints: ["node.labels.zone==a"] },
      ForceUpdate: 0,
      Networks: [{ Target: NETWORK_ID }],
    });
    // a spec with only the wire's defaults (zero limits too) shows none of them
    const unset = serviceSpec({ taskTemplate: { ...template, resources: { limits: { nanoCpus: 0, memoryBytes: 0, pids: 0 }, reservations: null } } });
    const plain = serviceJson(service({ spec: unset })).Spec.TaskTemplate;
    expect(plain).not.toHaveProperty("Resources");
    expect(Object.keys(plain.ContainerSpec)).toEqual(["Command", "Env"]);
  });

  it("omits PreviousSpec and UpdateStatus when there are none", () => {
    const json = serviceJson(service());
    expect(json).not.toHaveProperty("PreviousSpec");
    expect(json).not.toHaveProperty("UpdateStatus");
  });
});

describe("isGlobalMode", () => {
  it("reads the oneof discriminator, or the member when there is none", () => {
    expect(isGlobalMode(serviceSpec({ mode: "global", global: {}, replicated: undefined }))).toBe(true);
    expect(isGlobalMode(serviceSpec({ mode: undefined, global: {}, replicated: undefined }))).toBe(true);
    expect(isGlobalMode(serviceSpec())).toBe(false);
  });
});

describe("networkJson", () => {
  it("maps a network with its allocated subnet and VXLAN ID", () => {
    expect(networkJson(network())).toMatchObject({
      Name: "appnet",
      Id: NETWORK_ID,
      Created: "2025-01-01T00:00:00.000Z",
      Scope: "swarm",
      Driver: "overlay",
      IPAM: { Driver: "default", Config: [{ Subnet: "10.0.1.0/24", Gateway: "10.0.1.1" }] },
      Options: { "com.docker.network.driver.overlay.vxlanid_list": "4097" },
      Labels: { env: "lab" },
      Ingress: false,
      Attachable: false,
      Internal: false,
    });
  });

  it("keeps user options such as encrypted", () => {
    const n = network({
      encrypted: true,
      spec: { name: "secure", driver: "overlay", labels: {}, options: { encrypted: "" }, ipam: [], ingress: false },
    });
    expect(networkJson(n).Options).toEqual({
      "com.docker.network.driver.overlay.vxlanid_list": "4097",
      encrypted: "",
    });
  });
});

describe("taskJson", () => {
  it("maps a task with its network attachments", () => {
    const json = taskJson(task(), new Map([[NETWORK_ID, "appnet"]]));
    expect(json).toMatchObject({
      ID: "t1a2b3c4d5e6f7g8h9i0j1k2l",
      Slot: 1,
      NodeID: NODE_ID,
      ServiceID: SERVICE_ID,
      DesiredState: "running",
      Status: { State: "running", Message: "started", Err: "", Timestamp: "2025-01-01T00:00:02.000Z" },
      NetworksAttachments: [{ Network: { ID: NETWORK_ID, Name: "appnet" }, Addresses: ["10.0.1.5/24"] }],
    });
    expect(json.Status).not.toHaveProperty("Health");
  });

  it("includes health when the task has a check, and leaves out unknown network names", () => {
    const json = taskJson(
      task({ status: { state: "running", timestamp: "", message: "", err: "", health: "healthy" } }),
    );
    expect(json.Status.Health).toBe("healthy");
    expect(json.NetworksAttachments[0]!.Network).toEqual({ ID: NETWORK_ID });
  });
});

describe("nodeJson", () => {
  it("maps a node", () => {
    expect(nodeJson(node())).toMatchObject({
      ID: NODE_ID,
      Version: { Index: 4 },
      CreatedAt: "2025-01-01T00:00:00.000Z",
      UpdatedAt: "2025-01-01T00:00:00.000Z",
      Spec: { Labels: { zone: "a" }, Role: "worker", Availability: "active" },
      Description: { Hostname: "node-1", Dataplane: "nftables", Engine: { Labels: { disk: "ssd" } }, Platform: { OS: "linux" } },
      Status: { State: "ready", Message: "", Addr: "192.168.50.11" },
    });
    expect(nodeJson(node({ description: { hostname: "vs-1", dataplane: "ipvs", engineLabels: {}, runtimes: [], resources: null } })).Description).toMatchObject({
      Hostname: "vs-1",
      Dataplane: "ipvs",
      Engine: { Labels: {} },
    });
    // a manager from before nodes said: they all ran nftables
    expect(nodeJson(node({ description: { hostname: "old", dataplane: "", engineLabels: {}, runtimes: [], resources: null } })).Description.Dataplane).toBe("nftables");
  });
});

describe("networkServicesJson (network inspect --verbose)", () => {
  it("lists each service on the network with its VIP and its tasks' state, readiness and host", () => {
    const running = task();
    const draining = task({ id: "d".repeat(25), slot: 2, desiredState: "shutdown", networks: [{ networkId: NETWORK_ID, addresses: ["10.0.1.6/24"] }] });
    const unhealthy = task({
      id: "u".repeat(25),
      slot: 3,
      status: { state: "running", timestamp: "", message: "", err: "", health: "unhealthy" },
      networks: [{ networkId: NETWORK_ID, addresses: ["10.0.1.7/24"] }],
    });
    const gone = task({ id: "g".repeat(25), slot: 4, status: { state: "shutdown", timestamp: "", message: "", err: "", health: "" } });
    const elsewhere = service({ id: "other", spec: serviceSpec({ networks: [{ target: "another-network", aliases: [] }] }) });
    const out = networkServicesJson(network(), [service(), elsewhere], [running, draining, unhealthy, gone], [node()]);
    expect(Object.keys(out)).toEqual(["collabweb"]);
    expect(out.collabweb).toEqual({
      VIP: "10.0.1.2",
      EndpointMode: "vip",
      Ports: ["tcp/80:30000"],
      Tasks: [
        { Name: `collabweb.1.${running.id}`, EndpointIP: "10.0.1.5", Info: { "Host IP": "192.168.50.11" }, State: "running", Health: "", Ready: true },
        { Name: `collabweb.2.${draining.id}`, EndpointIP: "10.0.1.6", Info: { "Host IP": "192.168.50.11" }, State: "running", Health: "", Ready: false },
        { Name: `collabweb.3.${unhealthy.id}`, EndpointIP: "10.0.1.7", Info: { "Host IP": "192.168.50.11" }, State: "running", Health: "unhealthy", Ready: false },
      ],
    });
  });

  it("calls a running task with a health check ready only once it is healthy", () => {
    const template = serviceSpec().taskTemplate!;
    const healthcheck = { test: ["CMD", "true"], intervalMs: 1000, timeoutMs: 1000, retries: 3, startPeriodMs: 0 };
    const checked = { ...template, container: { ...template.container!, healthcheck } };
    const readiness = (health: string) => {
      const t = task({ spec: checked, status: { state: "running", timestamp: "", message: "", err: "", health } });
      return networkServicesJson(network(), [service()], [t], [node()]).collabweb;
    };
    expect(readiness("")).toMatchObject({ Tasks: [{ Health: "", Ready: false }] });
    expect(readiness("starting")).toMatchObject({ Tasks: [{ Health: "starting", Ready: false }] });
    expect(readiness("healthy")).toMatchObject({ Tasks: [{ Health: "healthy", Ready: true }] });
  });
});
