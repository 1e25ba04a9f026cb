import { VipmeshError } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { serviceSpec } from "../test/wire-fixtures.ts";
import { UsageError } from "./errors.ts";
import {
  type ServiceCreateFlags,
  applyServiceUpdate,
  buildServiceSpec,
  noServiceUpdate,
  parsePublishRm,
  parseScale,
  specFromWire,
} from "./service-spec.ts";

const createFlags = (overrides: Partial<ServiceCreateFlags> = {}): ServiceCreateFlags => ({
  name: "collabweb",
  networks: [],
  publish: [],
  labels: {},
  constraints: [],
  env: [],
  updateConfig: {},
  rollbackConfig: {},
  command: ["vipmesh", "whoami"],
  ...overrides,
});

describe("buildServiceSpec", () => {
  it("turns create flags into a complete spec", () => {
    const spec = buildServiceSpec(
      createFlags({
        replicas: 3,
        networks: ["appnet"],
        endpointMode: "vip",
        publish: ["80", "published=8080,target=81,protocol=udp,mode=host"],
        labels: { team: "web" },
        constraints: ["node.labels.zone==a"],
        env: ["A=1"],
        updateConfig: { parallelism: 2, delayMs: 5000, order: "start-first" },
        rollbackConfig: { monitorMs: 10 },
      }),
    );
    expect(spec).toEqual({
      annotations: { name: "collabweb", labels: { team: "web" } },
      taskTemplate: {
        container: { command: ["vipmesh", "whoami"], env: ["A=1"], healthcheck: null },
        placement: { constraints: ["node.labels.zone==a"] },
        forceUpdate: 0,
      },
      replicated: { replicas: 3 },
      networks: [{ target: "appnet" }],
      endpointSpec: {
        mode: "vip",
        ports: [
          { protocol: "tcp", targetPort: 80, publishedPort: 0, publishMode: "ingress" },
          { protocol: "udp", targetPort: 81, publishedPort: 8080, publishMode: "host" },
        ],
        lbScheduler: "",
        lbWeights: {},
        lbAffinity: "none",
        lbAffinityTimeoutS: 0,
      },
      updateConfig: { parallelism: 2, delayMs: 5000, failureAction: "pause", monitorMs: 5000, order: "start-first" },
      rollbackConfig: { parallelism: 1, delayMs: 0, failureAction: "pause", monitorMs: 10, order: "stop-first" },
    });
  });

  it("defaults to one replica and supports global mode", () => {
    expect(buildServiceSpec(createFlags()).replicated).toEqual({ replicas: 1 });
    const global = buildServiceSpec(createFlags({ mode: "global" }));
    expect(global.global).toEqual({});
    expect(global).not.toHaveProperty("replicated");
  });

  it("refuses --replicas with --mode global as a usage error", () => {
    expect(() => buildServiceSpec(createFlags({ mode: "global", replicas: 2 }))).toThrow(UsageError);
  });

  it("reports bad input with the validator's message", () => {
    expect(() => buildServiceSpec(createFlags({ publish: ["70000"] }))).toThrow(VipmeshError);
    expect(() => buildServiceSpec(createFlags({ publish: ["70000"] }))).toThrow(/70000.*1-65535/);
    expect(() => buildServiceSpec(createFlags({ command: [] }))).toThrow(/a command is required/);
  });
});

describe("load-balancing flags", () => {
  it("set the scheduler and per-slot weights on create, and merge weights on update", () => {
    const spec = buildServiceSpec(createFlags({ lbScheduler: "rr", lbWeights: { "1": 1, "2": 3 } }));
    expect(spec.endpointSpec).toMatchObject({ lbScheduler: "rr", lbWeights: { "1": 1, "2": 3 } });
    const updated = applyServiceUpdate(spec, { ...noServiceUpdate(), lbWeights: { "2": 0 } });
    expect(updated.endpointSpec).toMatchObject({ lbScheduler: "rr", lbWeights: { "1": 1, "2": 0 } });
  });
});

describe("affinity flags", () => {
  const sticky = (f: Partial<ServiceCreateFlags>) => buildServiceSpec(createFlags(f)).endpointSpec;

  it("set client-IP affinity on create, with 3 h unless a timeout is given", () => {
    expect(sticky({ lbAffinity: "client-ip" })).toMatchObject({ lbAffinity: "client-ip", lbAffinityTimeoutS: 10800 });
    expect(sticky({ lbAffinity: "client-ip", lbAffinityTimeoutS: 600 })).toMatchObject({ lbAffinity: "client-ip", lbAffinityTimeoutS: 600 });
    expect(sticky({})).toMatchObject({ lbAffinity: "none", lbAffinityTimeoutS: 0 });
    expect(() => sticky({ lbAffinityTimeoutS: 600 })).toThrow(/needs lb affinity client-ip/);
    expect(() => sticky({ lbAffinity: "client-ip", lbAffinityTimeoutS: 100_000 })).toThrow(/100000.*1-86400/);
  });

  it("on update: a timeout alone changes the timeout, none drops it, client-ip again takes the default", () => {
    const spec = buildServiceSpec(createFlags({ lbAffinity: "client-ip" }));
    const shorter = applyServiceUpdate(spec, { ...noServiceUpdate(), lbAffinityTimeoutS: 60 });
    expect(shorter.endpointSpec).toMatchObject({ lbAffinity: "client-ip", lbAffinityTimeoutS: 60 });
    expect(applyServiceUpdate(shorter, { ...noServiceUpdate(), lbScheduler: "rr" }).endpointSpec).toMatchObject({ lbAffinityTimeoutS: 60 });
    const off = applyServiceUpdate(shorter, { ...noServiceUpdate(), lbAffinity: "none" });
    expect(off.endpointSpec).toMatchObject({ lbAffinity: "none", lbAffinityTimeoutS: 0 });
    expect(applyServiceUpdate(off, { ...noServiceUpdate(), lbAffinity: "client-ip" }).endpointSpec).toMatchObject({ lbAffinityTimeoutS: 10800 });
    expect(() => applyServiceUpdate(off, { ...noServiceUpdate(), lbAffinityTimeoutS: 60 })).toThrow(/--lb-affinity client-ip/);
    expect(() => applyServiceUpdate(shorter, { ...noServiceUpdate(), lbAffinity: "none", lbAffinityTimeoutS: 60 })).toThrow(/needs lb affinity client-ip/);
  });
});

describe("applyServiceUpdate", () => {
  const current = specFromWire(
    serviceSpec({
      endpointSpec: {
        mode: "vip",
        ports: [
          { protocol: "tcp", targetPort: 80, publishedPort: 0, publishMode: "ingress", proxyProtocol: "" },
          { protocol: "udp", targetPort: 53, publishedPort: 5353, publishMode: "ingress", proxyProtocol: "" },
        ],
        lbScheduler: "",
        lbWeights: {},
        lbAffinity: "none",
        lbAffinityTimeoutS: 0,
      },
    }),
  );

  it("changes nothing without flags", () => {
    expect(applyServiceUpdate(current, noServiceUpdate())).toEqual(current);
  });

  it("adds, replaces and removes environment variables", () => {
    const spec = applyServiceUpdate(current, { ...noServiceUpdate(), envAdd: ["B=20", "C=3"], envRm: ["A"] });
    expect(spec.taskTemplate.container.env).toEqual(["B=20", "C=3"]);
  });

  it("adds and removes labels", () => {
    const spec = applyServiceUpdate(current, { ...noServiceUpdate(), labelAdd: { tier: "front" }, labelRm: ["team"] });
    expect(spec.annotations.labels).toEqual({ tier: "front" });
  });

  it("removes ports by target and protocol and adds new ones once", () => {
    const spec = applyServiceUpdate(current, {
      ...noServiceUpdate(),
      publishRm: ["53/udp"],
      publishAdd: ["80", "8443:443"],
    });
    expect(spec.endpointSpec.ports).toEqual([
      { protocol: "tcp", targetPort: 80, publishedPort: 0, publishMode: "ingress" },
      { protocol: "tcp", targetPort: 443, publishedPort: 8443, publishMode: "ingress" },
    ]);
  });

  it("moves an explicitly published port to its new target", () => {
    const spec = applyServiceUpdate(current, { ...noServiceUpdate(), publishAdd: ["5353:54/udp"] });
    expect(spec.endpointSpec.ports).toContainEqual({
      protocol: "udp",
      targetPort: 54,
      publishedPort: 5353,
      publishMode: "ingress",
    });
    expect(spec.endpointSpec.ports.filter((p) => p.publishedPort === 5353)).toHaveLength(1);
  });

  it("scales, forces, replaces the command and merges update settings", () => {
    const spec = applyServiceUpdate(current, {
      ...noServiceUpdate(),
      replicas: 5,
      force: true,
      args: ["sleep", "100"],
      updateConfig: { failureAction: "rollback" },
      endpointMode: "dnsrr",
      publishRm: ["80", "53/udp"],
    });
    expect(spec.replicated).toEqual({ replicas: 5 });
    expect(spec.taskTemplate.forceUpdate).toBe(1);
    expect(spec.taskTemplate.container.command).toEqual(["sleep", "100"]);
    expect(spec.updateConfig).toEqual({ ...current.updateConfig, failureAction: "rollback" });
    expect(spec.endpointSpec).toEqual({ mode: "dnsrr", ports: [], lbScheduler: "", lbWeights: {}, lbAffinity: "none", lbAffinityTimeoutS: 0 });
  });

  it("adds and removes constraints", () => {
    const spec = applyServiceUpdate(current, {
      ...noServiceUpdate(),
      constraintRm: ["node.labels.zone==a"],
      constraintAdd: ["node.hostname!=node-2"],
    });
    expect(spec.taskTemplate.placement.constraints).toEqual(["node.hostname!=node-2"]);
  });

  it("refuses to set replicas on a global service", () => {
    const global = specFromWire(serviceSpec({ mode: "global", global: {}, replicated: undefined }));
    expect(() => applyServiceUpdate(global, { ...noServiceUpdate(), replicas: 2 })).toThrow(/is global/);
  });
});

describe("argument parsers", () => {
  it("parses --publish-rm", () => {
    expect(parsePublishRm("80")).toEqual({ targetPort: 80, protocol: "tcp" });
    expect(parsePublishRm("53/udp")).toEqual({ targetPort: 53, protocol: "udp" });
    expect(parsePublishRm("8080:80/tcp")).toEqual({ targetPort: 80, protocol: "tcp" });
    expect(() => parsePublishRm("http")).toThrow(UsageError);
  });

  it("parses scale arguments", () => {
    expect(parseScale("web=3")).toEqual({ service: "web", replicas: 3 });
    expect(() => parseScale("web")).toThrow(UsageError);
    expect(() => parseScale("web=-1")).toThrow(UsageError);
  });
});
