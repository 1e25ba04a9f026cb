import { type ServiceSpec, normalizeServiceSpec } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { serviceJson, serviceSpecFromDocker, serviceSpecJson } from "../src/json/service.ts";

/** What `docker service create --name web --replicas 3 --network NET --publish 8080:80 --label a=b --env X=1 vipmesh/whoami` sends (recorded from docker 28.2.2). */
const CLI_CREATE = {
  Name: "web",
  Labels: { a: "b" },
  TaskTemplate: {
    ContainerSpec: { Image: "vipmesh/whoami:latest", Env: ["X=1"], Init: false, DNSConfig: {} },
    Resources: { Limits: {}, Reservations: {} },
    Placement: {},
    Networks: [{ Target: "netid1" }],
    ForceUpdate: 0,
  },
  Mode: { Replicated: { Replicas: 3 } },
  EndpointSpec: { Mode: "vip", Ports: [{ Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: "ingress" }] },
};

const fromDocker = (json: unknown): ServiceSpec => normalizeServiceSpec(serviceSpecFromDocker(json).spec as never);

describe("serviceSpecFromDocker", () => {
  it("reads what the docker CLI sends, with no warning for the defaults it fills in", () => {
    const { spec, warnings } = serviceSpecFromDocker(CLI_CREATE);
    expect(warnings).toEqual([]);
    const s = normalizeServiceSpec(spec as never);
    expect(s.annotations).toEqual({ name: "web", labels: { a: "b" } });
    expect(s.taskTemplate.container.image).toBe("vipmesh/whoami:latest");
    expect(s.taskTemplate.container.env).toEqual(["X=1"]);
    expect(s.replicated).toEqual({ replicas: 3 });
    expect(s.networks).toEqual([{ target: "netid1" }]);
    expect(s.endpointSpec.ports).toEqual([{ protocol: "tcp", targetPort: 80, publishedPort: 8080, publishMode: "ingress" }]);
  });

  it("gives no warning for a default that is not a zero value: --isolation default, SIGTERM, a 10 s grace", () => {
    // `docker service create --isolation default --stop-signal SIGTERM --stop-grace-period 10s`; compose's stop_signal: TERM
    for (const defaults of [{ Isolation: "default", StopSignal: "SIGTERM", StopGracePeriod: 10e9 }, { StopSignal: "TERM" }]) {
      const tt = { ...CLI_CREATE.TaskTemplate, ContainerSpec: { ...CLI_CREATE.TaskTemplate.ContainerSpec, ...defaults } };
      expect(serviceSpecFromDocker({ ...CLI_CREATE, TaskTemplate: tt }).warnings).toEqual([]);
    }
    const other = { ...CLI_CREATE.TaskTemplate, ContainerSpec: { ...CLI_CREATE.TaskTemplate.ContainerSpec, Isolation: "hyperv", StopSignal: "SIGINT" } };
    expect(serviceSpecFromDocker({ ...CLI_CREATE, TaskTemplate: other }).warnings).toEqual([
      "TaskTemplate.ContainerSpec.StopSignal is not supported by vipmesh and was ignored",
      "TaskTemplate.ContainerSpec.Isolation is not supported by vipmesh and was ignored",
    ]);
  });

  it("takes the platforms the docker CLI pins from /distribution silently when the nodes are one of them", () => {
    const pinned = (Platforms: unknown) => ({ ...CLI_CREATE, TaskTemplate: { ...CLI_CREATE.TaskTemplate, Placement: { Platforms } } });
    const arch = ({ x64: "amd64", arm64: "arm64" } as Record<string, string>)[process.arch] ?? process.arch;
    expect(serviceSpecFromDocker(pinned([{ Architecture: arch, OS: "linux" }, { Architecture: "s390x", OS: "linux" }])).warnings).toEqual([]);
    expect(serviceSpecFromDocker(pinned([{ Architecture: "s390x", OS: "linux" }, { Architecture: arch, OS: "windows" }])).warnings).toEqual([
      "TaskTemplate.Placement.Platforms is not supported by vipmesh and was ignored",
    ]);
  });

  it("names each field set that vipmesh does not honour, and only those", () => {
    const { warnings } = serviceSpecFromDocker({
      ...CLI_CREATE,
      TaskTemplate: {
        ...CLI_CREATE.TaskTemplate,
        ContainerSpec: { ...CLI_CREATE.TaskTemplate.ContainerSpec, Mounts: [{ Type: "volume", Target: "/data" }], Secrets: [{ SecretName: "s" }], StopGracePeriod: 10e9 },
        Placement: { Preferences: [{ Spread: { SpreadDescriptor: "node.labels.zone" } }] },
      },
      UpdateConfig: { Parallelism: 1, MaxFailureRatio: 0.5 },
    });
    expect(warnings).toEqual([
      "TaskTemplate.ContainerSpec.Mounts is not supported by vipmesh and was ignored",
      "TaskTemplate.ContainerSpec.Secrets is not supported by vipmesh and was ignored",
      "TaskTemplate.Placement.Preferences is not supported by vipmesh and was ignored",
      "UpdateConfig.MaxFailureRatio is not supported by vipmesh and was ignored",
    ]);
  });

  it("reads Dir and Resources.Reservations (docker service create --workdir /srv --reserve-cpu 0.5 --reserve-memory 64m), and writes them back", () => {
    const tt = {
      ...CLI_CREATE.TaskTemplate,
      ContainerSpec: { ...CLI_CREATE.TaskTemplate.ContainerSpec, Image: "busybox:latest", Args: ["sleep", "1"], Dir: "/srv" },
      Resources: { Limits: { MemoryBytes: 128 * 1024 ** 2 }, Reservations: { NanoCPUs: 5e8, MemoryBytes: 64 * 1024 ** 2 } },
    };
    const { spec, warnings } = serviceSpecFromDocker({ ...CLI_CREATE, TaskTemplate: tt });
    expect(warnings).toEqual([]);
    const s = normalizeServiceSpec(spec as never);
    expect(s.taskTemplate.container).toMatchObject({ image: "busybox:latest", command: [], args: ["sleep", "1"], dir: "/srv" });
    expect(s.taskTemplate.resources).toEqual({ limits: { memoryBytes: 128 * 1024 ** 2 }, reservations: { nanoCpus: 5e8, memoryBytes: 64 * 1024 ** 2 } });
    const json = serviceSpecJson(s);
    expect(json.TaskTemplate.ContainerSpec).toMatchObject({ Image: "busybox:latest", Args: ["sleep", "1"], Dir: "/srv" });
    expect(json.TaskTemplate.Resources).toEqual({ Limits: { MemoryBytes: 128 * 1024 ** 2 }, Reservations: { NanoCPUs: 5e8, MemoryBytes: 64 * 1024 ** 2 } });
    // reservations alone, and none: no Limits, or no Resources at all (omitempty)
    const reservedOnly = fromDocker({ ...CLI_CREATE, TaskTemplate: { ...tt, Resources: { Reservations: { MemoryBytes: 1024 ** 2 } } } });
    expect(serviceSpecJson(reservedOnly).TaskTemplate.Resources).toEqual({ Reservations: { MemoryBytes: 1024 ** 2 } });
    expect(serviceSpecJson(fromDocker(CLI_CREATE)).TaskTemplate).not.toHaveProperty("Resources");
    // a reservation above its limit is the core's refusal
    const over = { ...CLI_CREATE, TaskTemplate: { ...tt, Resources: { Limits: { MemoryBytes: 32 * 1024 ** 2 }, Reservations: { MemoryBytes: 64 * 1024 ** 2 } } } };
    expect(() => fromDocker(over)).toThrow(/memory reservation: 64 MiB is above the memory limit of 32 MiB/);
    expect(() => fromDocker({ ...CLI_CREATE, TaskTemplate: { ...tt, ContainerSpec: { Image: "x", Dir: "rel" } } })).toThrow(/workdir "rel" is not an absolute path/);
  });

  it("refuses a wrong type naming the Docker field", () => {
    const bad = { ...CLI_CREATE, TaskTemplate: { ContainerSpec: { Image: "x", Env: "X=1" } } };
    expect(() => serviceSpecFromDocker(bad)).toThrow("TaskTemplate.ContainerSpec.Env must be a list of strings");
    expect(() => serviceSpecFromDocker({ Name: 3 })).toThrow("Name must be a string");
    expect(() => serviceSpecFromDocker([])).toThrow(/must be a service spec|must be an object/);
    expect(() => serviceSpecFromDocker({ Name: "j", Mode: { ReplicatedJob: {} } })).toThrow(/not jobs/);
    // a negative duration under 1 ms would round to 0 ms and pass the core's range check
    const negative = { ...CLI_CREATE, TaskTemplate: { ...CLI_CREATE.TaskTemplate, RestartPolicy: { Delay: -1 } } };
    expect(() => serviceSpecFromDocker(negative)).toThrow("TaskTemplate.RestartPolicy.Delay must not be negative");
    expect(() => serviceSpecFromDocker({ ...CLI_CREATE, UpdateConfig: { Monitor: -999_999 } })).toThrow("UpdateConfig.Monitor must not be negative");
  });

  it("reads health checks in all three forms, durations in nanoseconds", () => {
    const withCheck = (Test: string[]) =>
      fromDocker({ Name: "h", TaskTemplate: { ContainerSpec: { Image: "vipmesh/whoami", Healthcheck: { Test, Interval: 2e9, Timeout: 1e9, Retries: 4 } } } });
    expect(withCheck(["CMD", "true"]).taskTemplate.container.healthcheck).toMatchObject({ test: ["true"], intervalMs: 2000, timeoutMs: 1000, retries: 4 });
    expect(withCheck(["CMD-SHELL", "curl -f localhost"]).taskTemplate.container.healthcheck?.test).toEqual(["/bin/sh", "-c", "curl -f localhost"]);
    expect(withCheck(["NONE"]).taskTemplate.container.healthcheck).toBeNull();
    // a CMD with nothing to run is a mistake, not "no check"
    expect(() => withCheck(["CMD"])).toThrow(/Healthcheck.Test must be/);
  });

  it("takes the deprecated top-level Networks, aliases, a replicated mode without Replicas (1), and a restart policy", () => {
    const s = fromDocker({
      Name: "n",
      TaskTemplate: { ContainerSpec: { Image: "vipmesh/whoami" }, RestartPolicy: { Condition: "on-failure", Delay: 1e9, MaxAttempts: 3 } },
      Mode: { Replicated: {} },
      Networks: [{ Target: "appnet", Aliases: ["web"] }],
    });
    expect(s.replicated).toEqual({ replicas: 1 });
    expect(s.networks).toEqual([{ target: "appnet", aliases: ["web"] }]);
    expect(s.taskTemplate.restartPolicy).toMatchObject({ condition: "on-failure", delayMs: 1000, maxAttempts: 3 });
  });

  it("round-trips vipmesh's spec through Docker's JSON, its load-balancing fields too", () => {
    const spec = fromDocker({
      ...CLI_CREATE,
      TaskTemplate: {
        ...CLI_CREATE.TaskTemplate,
        ContainerSpec: { Image: "vipmesh/whoami", Command: ["/bin/app"], Args: ["-v"], Hostname: "h1", Labels: { c: "d" }, Env: ["X=1"], User: "1000" },
        Resources: { Limits: { MemoryBytes: 64 * 1024 ** 2 } },
        Placement: { Constraints: ["node.labels.zone==a"] },
      },
      EndpointSpec: { Mode: "vip", Ports: [{ Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, ProxyProtocol: "v2" }], LbScheduler: "rr", LbAffinity: "client-ip", LbAffinityTimeout: 60e9 },
      UpdateConfig: { Parallelism: 2, Delay: 1e9, FailureAction: "rollback", Monitor: 3e9, Order: "start-first" },
    });
    const json = JSON.parse(JSON.stringify(serviceSpecJson(spec)));
    const back = serviceSpecFromDocker(json);
    expect(back.warnings).toEqual([]);
    expect(normalizeServiceSpec(back.spec as never)).toEqual(spec);
  });

  it("keeps vipmesh's own fields on an update whose body leaves them out (the docker CLI drops what Go's structs lack); a given value changes them", () => {
    const current = fromDocker({
      ...CLI_CREATE,
      EndpointSpec: { Ports: [{ TargetPort: 80, PublishedPort: 8080, ProxyProtocol: "v2" }], LbScheduler: "rr", LbWeights: { "1": 3 }, LbAffinity: "client-ip", LbAffinityTimeout: 60e9 },
    });
    // what `docker service scale` sends back: Docker's fields only
    const scaled = normalizeServiceSpec(
      serviceSpecFromDocker({ ...CLI_CREATE, Mode: { Replicated: { Replicas: 5 } }, EndpointSpec: { Ports: [{ Protocol: "tcp", TargetPort: 80, PublishedPort: 8080, PublishMode: "ingress" }] } }, current).spec as never,
    );
    expect(scaled.endpointSpec).toEqual(current.endpointSpec);
    expect(scaled.replicated).toEqual({ replicas: 5 });
    const changed = normalizeServiceSpec(serviceSpecFromDocker({ ...CLI_CREATE, EndpointSpec: { LbScheduler: "", LbAffinity: "none" } }, current).spec as never);
    expect(changed.endpointSpec).toMatchObject({ lbScheduler: "", lbAffinity: "none", lbAffinityTimeoutS: 0, ports: [] });
  });
});

describe("serviceJson", () => {
  it("gives Docker's shape: replicas never null, networks in the template, no empty times, the status asked for", () => {
    const spec = fromDocker(CLI_CREATE);
    const json = serviceJson(
      {
        id: "s1",
        version: 4,
        createdAt: "2025-01-01T00:00:00.000Z",
        updatedAt: "2025-01-01T00:00:01.000Z",
        spec: { ...spec, replicated: null, global: null },
        previousSpec: null,
        endpoint: { spec: spec.endpointSpec, ports: spec.endpointSpec.ports, virtualIps: [{ networkId: "netid1", addr: "10.0.1.2/24" }] },
        updateStatus: { state: "updating", startedAt: "2025-01-01T00:00:01.000Z", completedAt: "", message: "update in progress" },
        specVersion: 1,
      },
      { status: { RunningTasks: 1, DesiredTasks: 3, CompletedTasks: 0 } },
    );
    expect(json.Spec.Mode).toEqual({ Replicated: { Replicas: 0 } });
    expect(json.Spec.TaskTemplate.Networks).toEqual([{ Target: "netid1" }]);
    expect(json.Spec.TaskTemplate.ContainerSpec.Image).toBe("vipmesh/whoami:latest");
    expect(json.Endpoint.VirtualIPs).toEqual([{ NetworkID: "netid1", Addr: "10.0.1.2/24" }]);
    expect(json.UpdateStatus).toEqual({ State: "updating", StartedAt: "2025-01-01T00:00:01.000Z", Message: "update in progress" });
    expect(json.ServiceStatus).toEqual({ RunningTasks: 1, DesiredTasks: 3, CompletedTasks: 0 });
  });

  it("fills Docker's default restart policy for insertDefaults", () => {
    const spec = fromDocker(CLI_CREATE);
    expect(serviceSpecJson(spec).TaskTemplate).not.toHaveProperty("RestartPolicy");
    expect(serviceSpecJson(spec, { insertDefaults: true }).TaskTemplate.RestartPolicy).toEqual({ Condition: "any", Delay: 5e9, MaxAttempts: 0, Window: 0 });
  });
});
