import { describe, expect, it } from "vitest";
import { expectVipmeshError } from "../test/expect-error.ts";
import type { NetworkSpec, PortConfig, ServiceSpec } from "./types.ts";
import {
  formatBytes,
  MAX_REPLICAS,
  NODE_LABEL_LIMITS,
  normalizeNetworkSpec,
  normalizeNodeLabels,
  normalizeNodeSpec,
  normalizePort,
  normalizeServiceSpec,
  validateName,
  validateSubnet,
  validateUser,
} from "./validation.ts";

// The loose shapes the normalizers accept: anything may be missing or mistyped.
type LooseService = { [K in keyof ServiceSpec]?: unknown };
type LooseNetwork = { [K in keyof NetworkSpec]?: unknown };
type LoosePort = { [K in keyof PortConfig]?: unknown };

/** The smallest service input that is valid, plus overrides. */
const serviceInput = (overrides: LooseService = {}): LooseService => ({
  annotations: { name: "collabweb" },
  taskTemplate: { container: { command: ["vipmesh", "whoami"] } },
  ...overrides,
});

const withContainer = (container: Record<string, unknown>): LooseService =>
  serviceInput({ taskTemplate: { container: { command: ["vipmesh", "whoami"], ...container } } });

const withConstraints = (constraints: string[]): LooseService =>
  serviceInput({ taskTemplate: { container: { command: ["run"] }, placement: { constraints } } });

const withEndpoint = (mode: string | undefined, ports: LoosePort[]): LooseService =>
  serviceInput({ endpointSpec: { mode, ports } });

const networkInput = (overrides: LooseNetwork = {}): LooseNetwork => ({ name: "appnet", ...overrides });

describe("validateName", () => {
  it.each(["collabweb", "a", "web-1", "A1", "a".repeat(63), "demo_web", "web.v2", "web-"])("accepts %j (Docker's rule)", (name) => {
    expect(validateName("service", name)).toBe(name);
  });

  it.each(["-web", "_web", ".web", "a".repeat(64), "web 1", "wéb", "web/1"])("rejects %j and names it", (name) => {
    expectVipmeshError(() => validateName("service", name), "invalid_argument", `service name "${name}"`, "Docker's rule");
  });

  it.each([[""], [undefined], [42]])("rejects a missing name (%j)", (name) => {
    expectVipmeshError(() => validateName("network", name), "invalid_argument", "network name is required");
  });
});

describe("validateSubnet", () => {
  it.each(["10.0.3.0/24", "10.0.0.0/8", "192.168.7.8/29", "172.16.0.0/12"])("accepts %s", (subnet) => {
    expect(validateSubnet(subnet)).toBe(subnet);
  });

  it.each([
    { subnet: "10.0.3.0", mentions: ['"10.0.3.0"', "CIDR"] },
    { subnet: "300.0.0.0/24", mentions: ['"300.0.0.0/24"'] },
    { subnet: "10.0.0.0/33", mentions: ['"10.0.0.0/33"'] },
    { subnet: "10.0.3/24", mentions: ['"10.0.3/24"'] },
    { subnet: "10.0.3.1/24", mentions: ['"10.0.3.1/24"', "did you mean 10.0.3.0/24?"] },
    { subnet: "10.0.0.0/30", mentions: ['"10.0.0.0/30"', "/29"] },
    { subnet: "10.0.0.0/32", mentions: ['"10.0.0.0/32"', "/29"] },
    { subnet: "10.0.0.0/7", mentions: ['"10.0.0.0/7"', "/8"] },
  ])("rejects $subnet", ({ subnet, mentions }) => {
    expectVipmeshError(() => validateSubnet(subnet), "invalid_argument", ...mentions);
  });

  it("requires a subnet", () => {
    expectVipmeshError(() => validateSubnet(""), "invalid_argument", "subnet is required");
  });
});

describe("normalizeNodeLabels", () => {
  const many = (n: number, value = "v") => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, value]));

  it("takes labels up to every limit", () => {
    expect(normalizeNodeLabels("labels", many(NODE_LABEL_LIMITS.count))).toEqual(many(NODE_LABEL_LIMITS.count));
    expect(normalizeNodeLabels("labels", { ["k".repeat(128)]: "x".repeat(4096) })).toEqual({ ["k".repeat(128)]: "x".repeat(4096) });
    expect(normalizeNodeLabels("labels", undefined)).toEqual({});
  });

  it.each([
    { what: "20,000 labels", labels: many(20_000), mentions: ["20000 labels", "at most 64"] },
    { what: "65 labels", labels: many(65), mentions: ["65 labels", "at most 64"] },
    { what: "a 129-byte key", labels: { ["k".repeat(129)]: "" }, mentions: ["129 bytes", "at most 128"] },
    { what: "a value over 4 KiB", labels: { big: "x".repeat(4097) }, mentions: ['label "big"', "4 KiB"] },
    // bytes, not characters: 2,049 two-byte characters
    { what: "a value over 4 KiB in UTF-8", labels: { big: "é".repeat(2049) }, mentions: ['label "big"', "at most 4 KiB"] },
    { what: "over 16 KiB in all", labels: many(5, "x".repeat(4000)), mentions: ["19.54 KiB", "at most 16 KiB in all"] },
    { what: "a bad key", labels: { "-x": "" }, mentions: ['label key "-x"'] },
  ])("refuses $what, naming the field", ({ labels, mentions }) => {
    expectVipmeshError(() => normalizeNodeLabels("engine labels", labels), "invalid_argument", "engine labels", ...mentions);
  });

  it("holds a node update to the same limits", () => {
    const current = { labels: { zone: "a" }, availability: "active" as const };
    expectVipmeshError(() => normalizeNodeSpec({ labels: many(65) }, current), "invalid_argument", "at most 64");
    expect(normalizeNodeSpec({ availability: "drain" }, current)).toEqual({ labels: { zone: "a" }, availability: "drain" });
  });
});

describe("normalizePort", () => {
  it("fills protocol tcp, published 0 and mode ingress", () => {
    expect(normalizePort({ targetPort: 80 }, "port 1")).toEqual({
      protocol: "tcp",
      targetPort: 80,
      publishedPort: 0,
      publishMode: "ingress",
    });
  });

  it.each(["tcp", "udp", "sctp"] as const)("accepts protocol %s", (protocol) => {
    expect(normalizePort({ targetPort: 53, protocol }, "port 1").protocol).toBe(protocol);
  });

  it.each(["ingress", "host"] as const)("accepts publish mode %s", (publishMode) => {
    expect(normalizePort({ targetPort: 80, publishedPort: 8080, publishMode }, "port 1")).toEqual({
      protocol: "tcp",
      targetPort: 80,
      publishedPort: 8080,
      publishMode,
    });
  });

  it("accepts the edges of the port range", () => {
    expect(normalizePort({ targetPort: 1, publishedPort: 65535 }, "p")).toMatchObject({
      targetPort: 1,
      publishedPort: 65535,
    });
  });

  it.each([
    { input: { targetPort: 0 }, mentions: ["port 1.targetPort: 0 ", "1-65535"] },
    { input: {}, mentions: ["port 1.targetPort: 0 "] },
    { input: { targetPort: 70000 }, mentions: ["port 1.targetPort", "70000"] },
    { input: { targetPort: 80.5 }, mentions: ["port 1.targetPort", "80.5"] },
    { input: { targetPort: "http" }, mentions: ["port 1.targetPort", "http"] },
    { input: { targetPort: 80, publishedPort: 70000 }, mentions: ["port 1.publishedPort", "70000"] },
    { input: { targetPort: 80, publishedPort: -1 }, mentions: ["port 1.publishedPort", "-1"] },
    { input: { targetPort: 80, protocol: "icmp" }, mentions: ["port 1.protocol", '"icmp"', "tcp, udp, sctp"] },
    { input: { targetPort: 80, publishMode: "bridge" }, mentions: ["port 1.publishMode", '"bridge"'] },
  ])("rejects $input", ({ input, mentions }) => {
    expectVipmeshError(() => normalizePort(input, "port 1"), "invalid_argument", ...mentions);
  });
});

describe("normalizeServiceSpec", () => {
  it("takes a load-balancing scheduler and per-slot weights, and rejects others", () => {
    const spec = normalizeServiceSpec({ ...serviceInput(), endpointSpec: { lbScheduler: "rr", lbWeights: { "1": 1, "2": 3 } } });
    expect(spec.endpointSpec).toMatchObject({ lbScheduler: "rr", lbWeights: { "1": 1, "2": 3 } });
    // lc is some dataplane's (ipvs): whether every node honours it is the manager's check (dataplanes.ts)
    expect(normalizeServiceSpec({ ...serviceInput(), endpointSpec: { lbScheduler: "lc" } }).endpointSpec.lbScheduler).toBe("lc");
    expectVipmeshError(() => normalizeServiceSpec({ ...serviceInput(), endpointSpec: { lbScheduler: "fastest" } }), "invalid_argument", '"fastest"', "random, rr, wrr, lc");
    expectVipmeshError(() => normalizeServiceSpec({ ...serviceInput(), endpointSpec: { lbWeights: { "0": 1 } } }), "invalid_argument", '"0"', "slot");
    expectVipmeshError(() => normalizeServiceSpec({ ...serviceInput(), endpointSpec: { lbWeights: { "2": 70000 } } }), "invalid_argument", "slot 2", "70000");
  });

  it("takes client-IP affinity with a timeout, 3 h by default, and none without one", () => {
    const affinity = (endpointSpec: Record<string, unknown>) => normalizeServiceSpec({ ...serviceInput(), endpointSpec }).endpointSpec;
    expect(affinity({ lbAffinity: "client-ip" })).toMatchObject({ lbAffinity: "client-ip", lbAffinityTimeoutS: 10800 });
    expect(affinity({ lbAffinity: "client-ip", lbAffinityTimeoutS: 0 })).toMatchObject({ lbAffinityTimeoutS: 10800 });
    expect(affinity({ lbAffinity: "client-ip", lbAffinityTimeoutS: 60 })).toMatchObject({ lbAffinity: "client-ip", lbAffinityTimeoutS: 60 });
    expect(affinity({ lbAffinity: "client-ip", lbAffinityTimeoutS: 86400 })).toMatchObject({ lbAffinityTimeoutS: 86400 });
    // "" is proto3's absent field: none
    expect(affinity({ lbAffinity: "" })).toMatchObject({ lbAffinity: "none", lbAffinityTimeoutS: 0 });
    expect(affinity({ lbAffinity: "none", lbAffinityTimeoutS: 0 })).toMatchObject({ lbAffinity: "none", lbAffinityTimeoutS: 0 });
  });

  it.each([
    { endpointSpec: { lbAffinity: "client-ip-port" }, mentions: ['"client-ip-port"', "none, client-ip"] },
    { endpointSpec: { lbAffinity: "client-ip", lbAffinityTimeoutS: 86401 }, mentions: ["86401", "1-86400", "--lb-affinity-timeout 10800"] },
    { endpointSpec: { lbAffinity: "client-ip", lbAffinityTimeoutS: 1.5 }, mentions: ["1.5", "whole number of seconds"] },
    { endpointSpec: { lbAffinity: "client-ip", lbAffinityTimeoutS: -1 }, mentions: ["-1", "1-86400"] },
    { endpointSpec: { lbAffinityTimeoutS: 600 }, mentions: ["600s", "--lb-affinity client-ip"] },
  ])("rejects affinity $endpointSpec", ({ endpointSpec, mentions }) => {
    expectVipmeshError(() => normalizeServiceSpec({ ...serviceInput(), endpointSpec }), "invalid_argument", ...mentions);
  });

  it("fills every default", () => {
    expect(normalizeServiceSpec(serviceInput())).toEqual({
      annotations: { name: "collabweb", labels: {} },
      taskTemplate: {
        container: { command: ["vipmesh", "whoami"], env: [], healthcheck: null },
        placement: { constraints: [] },
        forceUpdate: 0,
      },
      replicated: { replicas: 1 },
      networks: [],
      endpointSpec: { mode: "vip", ports: [], lbScheduler: "", lbWeights: {}, lbAffinity: "none", lbAffinityTimeoutS: 0 },
      updateConfig: { parallelism: 1, delayMs: 0, failureAction: "pause", monitorMs: 5000, order: "stop-first" },
      rollbackConfig: { parallelism: 1, delayMs: 0, failureAction: "pause", monitorMs: 5000, order: "stop-first" },
    });
  });

  it("fills port defaults: tcp, ingress", () => {
    const spec = normalizeServiceSpec(withEndpoint(undefined, [{ targetPort: 80 }]));
    expect(spec.endpointSpec).toEqual({
      mode: "vip",
      ports: [{ protocol: "tcp", targetPort: 80, publishedPort: 0, publishMode: "ingress" }],
      lbScheduler: "",
      lbWeights: {},
      lbAffinity: "none",
      lbAffinityTimeoutS: 0,
    });
  });

  it("keeps given update config fields and defaults the rest", () => {
    const spec = normalizeServiceSpec(serviceInput({ updateConfig: { parallelism: 2, order: "start-first" } }));
    expect(spec.updateConfig).toEqual({
      parallelism: 2,
      delayMs: 0,
      failureAction: "pause",
      monitorMs: 5000,
      order: "start-first",
    });
  });

  it("makes a global service when asked", () => {
    const spec = normalizeServiceSpec(serviceInput({ global: {} }));
    expect(spec.global).toEqual({});
    expect(spec.replicated).toBeUndefined();
  });

  it.each([0, 1, 5, MAX_REPLICAS])("accepts %i replicas", (replicas) => {
    expect(normalizeServiceSpec(serviceInput({ replicated: { replicas } })).replicated).toEqual({ replicas });
  });

  it.each([-1, 1.5, MAX_REPLICAS + 1, "many"])("rejects %j replicas and names the value", (replicas) => {
    expectVipmeshError(
      () => normalizeServiceSpec(serviceInput({ replicated: { replicas } })),
      "invalid_argument",
      "replicas",
      String(replicas),
    );
  });

  it.each(["vip", "dnsrr"] as const)("accepts endpoint mode %s", (mode) => {
    expect(normalizeServiceSpec(withEndpoint(mode, [])).endpointSpec.mode).toBe(mode);
  });

  it("accepts dnsrr with a host-mode published port", () => {
    const spec = normalizeServiceSpec(
      withEndpoint("dnsrr", [{ targetPort: 80, publishedPort: 8080, publishMode: "host" }]),
    );
    expect(spec.endpointSpec.ports).toEqual([
      { protocol: "tcp", targetPort: 80, publishedPort: 8080, publishMode: "host" },
    ]);
  });

  it("accepts the same published port number on tcp and udp", () => {
    const spec = normalizeServiceSpec(
      withEndpoint("vip", [
        { targetPort: 53, publishedPort: 53, protocol: "tcp" },
        { targetPort: 53, publishedPort: 53, protocol: "udp" },
      ]),
    );
    expect(spec.endpointSpec.ports.map((p) => p.protocol)).toEqual(["tcp", "udp"]);
  });

  it("accepts env of the form KEY=value (the value may be empty or hold '=')", () => {
    const env = ["A=1", "_UNDER=x", "EMPTY=", "URL=a=b"];
    expect(normalizeServiceSpec(withContainer({ env })).taskTemplate.container.env).toEqual(env);
  });

  it("accepts valid constraints", () => {
    const constraints = ["node.hostname==n1", "node.id!=abc", "node.labels.zone == a"];
    expect(normalizeServiceSpec(withConstraints(constraints)).taskTemplate.placement.constraints).toEqual(constraints);
  });

  it.each([
    { why: "no spec", input: null, mentions: ["service spec is required"] },
    { why: "no name", input: serviceInput({ annotations: {} }), mentions: ["service name is required"] },
    { why: "a bad name", input: serviceInput({ annotations: { name: "_web1" } }), mentions: ['"_web1"'] },
    { why: "no command", input: serviceInput({ taskTemplate: {} }), mentions: ["command is required"] },
    { why: "an unknown endpoint mode", input: withEndpoint("roundrobin", []), mentions: ['"roundrobin"', "vip, dnsrr"] },
    {
      why: "dnsrr with an ingress port",
      input: withEndpoint("dnsrr", [{ targetPort: 80, publishedPort: 8080 }]),
      mentions: ["port 80/tcp", "dnsrr", "mode=host"],
    },
    {
      why: "dnsrr with a port defaulting to ingress",
      input: withEndpoint("dnsrr", [{ targetPort: 53, protocol: "udp" }]),
      mentions: ["port 53/udp", "dnsrr"],
    },
    {
      why: "a port given twice",
      input: withEndpoint("vip", [
        { targetPort: 80, publishedPort: 8080 },
        { targetPort: 81, publishedPort: 8080 },
      ]),
      mentions: ["8080/tcp", "twice"],
    },
    { why: "a bad port", input: withEndpoint("vip", [{ targetPort: 70000 }]), mentions: ["port 1.targetPort", "70000"] },
    { why: "a bad protocol", input: withEndpoint("vip", [{ targetPort: 80, protocol: "icmp" }]), mentions: ['"icmp"'] },
    {
      why: "a bad publish mode",
      input: withEndpoint("vip", [{ targetPort: 80, publishMode: "bridge" }]),
      mentions: ['"bridge"', "ingress, host"],
    },
    { why: "env without '='", input: withContainer({ env: ["NOVALUE"] }), mentions: ['env "NOVALUE"', "KEY=value"] },
    { why: "env without a key", input: withContainer({ env: ["=x"] }), mentions: ['env "=x"'] },
    { why: "env with a bad key", input: withContainer({ env: ["1A=x"] }), mentions: ['env "1A=x"'] },
    { why: "env with a space in the key", input: withContainer({ env: ["A B=x"] }), mentions: ['env "A B=x"'] },
    { why: "env that is not a list of strings", input: withContainer({ env: [1] }), mentions: ["env"] },
    { why: "an unknown constraint key", input: withConstraints(["node.role==manager"]), mentions: ['"node.role==manager"'] },
    { why: "a constraint with '='", input: withConstraints(["node.hostname=n1"]), mentions: ['"node.hostname=n1"'] },
    { why: "a constraint without value", input: withConstraints(["node.labels.zone=="]), mentions: ['"node.labels.zone=="'] },
    {
      why: "replicated and global",
      input: serviceInput({ replicated: { replicas: 1 }, global: {} }),
      mentions: ["replicated or global"],
    },
    { why: "a network without target", input: serviceInput({ networks: [{}] }), mentions: ["network 1", "target"] },
    {
      why: "a bad update parallelism",
      input: serviceInput({ updateConfig: { parallelism: -2 } }),
      mentions: ["update.parallelism", "-2"],
    },
    {
      why: "a bad failure action",
      input: serviceInput({ rollbackConfig: { failureAction: "explode" } }),
      mentions: ["rollback.failureAction", '"explode"'],
    },
    {
      why: "a bad label key",
      input: serviceInput({ annotations: { name: "web", labels: { "a b": "x" } } }),
      mentions: ['"a b"'],
    },
  ])("rejects $why", ({ input, mentions }) => {
    expectVipmeshError(() => normalizeServiceSpec(input), "invalid_argument", ...mentions);
  });
});

describe("a task's confinement: user, capabilities, limits", () => {
  const container = (fields: Record<string, unknown>) => normalizeServiceSpec(withContainer(fields)).taskTemplate.container;
  const limits = (l: Record<string, unknown> | null) =>
    normalizeServiceSpec(serviceInput({ taskTemplate: { container: { command: ["run"] }, resources: l === null ? null : { limits: l } } })).taskTemplate
      .resources;

  it("leaves every unset field out, so a spec stored before they existed is equal to itself normalized", () => {
    // proto3's defaults as the wire gives them: "", [], a null message, zeros
    const wire = normalizeServiceSpec(
      serviceInput({
        taskTemplate: { container: { command: ["run"], user: "", capabilityAdd: [], capabilityDrop: [] }, resources: { limits: { nanoCpus: 0, memoryBytes: 0, pids: 0 } } },
      }),
    );
    expect(wire.taskTemplate).toEqual(normalizeServiceSpec(serviceInput({ taskTemplate: { container: { command: ["run"] } } })).taskTemplate);
    expect(wire.taskTemplate).not.toHaveProperty("resources");
    expect(wire.taskTemplate.container).not.toHaveProperty("user");
    expect(wire.taskTemplate.container).not.toHaveProperty("capabilityAdd");
    expect(limits(null)).toBeUndefined();
  });

  it.each(["0", "1000", "1000:1000", "4294967294:0", "nobody", "nobody:nogroup", "www-data:33", "_svc", "machine$", "a".repeat(32)])(
    "takes the user %j as given",
    (user) => {
      expect(validateUser(user)).toBe(user);
      expect(container({ user }).user).toBe(user);
    },
  );

  it.each(["root:", ":1000", "1000:nogroup", "Nobody", "1a", "a b", "a:b:c", "4294967295", "-1", "a".repeat(33), "web:grp$", 1000])(
    "refuses the user %j, saying what a user looks like",
    (user) => {
      expectVipmeshError(() => container({ user }), "invalid_argument", `user "${user}"`, "UID[:GID]", "NAME[:GROUP]");
    },
  );

  it("stores capabilities canonical: CAP_ names or ALL, sorted, once each", () => {
    expect(container({ capabilityAdd: ["net_admin", "SYS_TIME", "CAP_NET_ADMIN"], capabilityDrop: ["Net_Raw", "all"] })).toMatchObject({
      capabilityAdd: ["CAP_NET_ADMIN", "CAP_SYS_TIME"],
      capabilityDrop: ["ALL"],
    });
  });

  it("keeps ALL alone in its list, and a capability both added and dropped is added (Docker's precedence)", () => {
    expect(container({ capabilityAdd: ["NET_ADMIN", "ALL"] }).capabilityAdd).toEqual(["ALL"]);
    const both = container({ capabilityAdd: ["NET_RAW"], capabilityDrop: ["NET_RAW", "CHOWN"] });
    expect(both).toMatchObject({ capabilityAdd: ["CAP_NET_RAW"], capabilityDrop: ["CAP_CHOWN"] });
    expect(container({ capabilityAdd: ["NET_RAW"], capabilityDrop: ["net_raw"] })).not.toHaveProperty("capabilityDrop");
  });

  it.each([
    { fields: { capabilityAdd: ["CAP_FLY"] }, mentions: ['cap-add: "CAP_FLY" is not a Linux capability', "NET_ADMIN", "ALL"] },
    { fields: { capabilityDrop: ["NET_ADMIN", "sys_magic"] }, mentions: ['cap-drop: "sys_magic"'] },
    { fields: { capabilityAdd: "NET_ADMIN" }, mentions: ["cap-add must be a list of strings"] },
  ])("refuses capabilities $fields", ({ fields, mentions }) => {
    expectVipmeshError(() => container(fields), "invalid_argument", ...mentions);
  });

  it("keeps the limits that are set, at the edges of their ranges", () => {
    expect(limits({ nanoCpus: 10_000_000, memoryBytes: 6 * 1024 ** 2, pids: 1 })).toEqual({
      limits: { nanoCpus: 10_000_000, memoryBytes: 6 * 1024 ** 2, pids: 1 },
    });
    expect(limits({ nanoCpus: 1024e9, memoryBytes: 1024 ** 4, pids: 4_194_304 })).toEqual({
      limits: { nanoCpus: 1024e9, memoryBytes: 1024 ** 4, pids: 4_194_304 },
    });
    expect(limits({ nanoCpus: 0, memoryBytes: 512 * 1024 ** 2 })).toEqual({ limits: { memoryBytes: 512 * 1024 ** 2 } });
  });

  it.each([
    { l: { nanoCpus: 1_000_000 }, mentions: ["cpu limit: 0.001 CPUs is below 0.01 CPUs", "Docker's minimum", "give 0 (no limit) or 0.01 CPUs to 1024 CPUs (--limit-cpu)"] },
    { l: { nanoCpus: 2048e9 }, mentions: ["cpu limit: 2048 CPUs is above 1024 CPUs"] },
    { l: { nanoCpus: 0.5 }, mentions: ["cpu limit: 0.5 is not a whole number"] },
    { l: { memoryBytes: 1024 ** 2 }, mentions: ["memory limit: 1 MiB is below 6 MiB (Docker's minimum)", "6 MiB to 1 TiB (--limit-memory)"] },
    { l: { memoryBytes: 2 * 1024 ** 4 }, mentions: ["memory limit: 2 TiB is above 1 TiB"] },
    { l: { memoryBytes: -1 }, mentions: ["memory limit: -1 is not a whole number", "give 0 (no limit)"] },
    { l: { pids: 5_000_000 }, mentions: ["pids limit: 5000000 is above 4194304", "give 0 (the default, 4096) or 1 to 4194304 (--limit-pids)"] },
    { l: { pids: "many" }, mentions: ["pids limit: many is not a whole number"] },
  ])("refuses the limits $l, saying the range", ({ l, mentions }) => {
    expectVipmeshError(() => limits(l), "invalid_argument", ...mentions);
  });

  const resources = (r: Record<string, unknown>) =>
    normalizeServiceSpec(serviceInput({ taskTemplate: { container: { command: ["run"] }, resources: r } })).taskTemplate.resources;

  it("keeps the reservations that are set beside the limits, and a spec with none has no reservations key", () => {
    expect(resources({ reservations: { nanoCpus: 500_000_000, memoryBytes: 64 * 1024 ** 2 } })).toEqual({
      limits: {},
      reservations: { nanoCpus: 500_000_000, memoryBytes: 64 * 1024 ** 2 },
    });
    expect(resources({ limits: { memoryBytes: 64 * 1024 ** 2 }, reservations: { memoryBytes: 64 * 1024 ** 2, nanoCpus: 0 } })).toEqual({
      limits: { memoryBytes: 64 * 1024 ** 2 },
      reservations: { memoryBytes: 64 * 1024 ** 2 },
    });
    expect(resources({ limits: { pids: 10 }, reservations: { nanoCpus: 0, memoryBytes: 0 } })).toEqual({ limits: { pids: 10 } });
    expect(resources({ limits: {}, reservations: { nanoCpus: 0, memoryBytes: 0 } })).toBeUndefined();
  });

  it.each([
    { r: { reservations: { memoryBytes: -1 } }, mentions: ["memory reservation: -1 is not a whole number", "--reserve-memory"] },
    { r: { reservations: { nanoCpus: 0.5 } }, mentions: ["cpu reservation: 0.5 is not a whole number", "--reserve-cpu"] },
    { r: { reservations: { memoryBytes: 2 * 1024 ** 4 } }, mentions: ["memory reservation: 2 TiB is above 1 TiB"] },
    {
      r: { limits: { memoryBytes: 32 * 1024 ** 2 }, reservations: { memoryBytes: 64 * 1024 ** 2 } },
      mentions: ["memory reservation: 64 MiB is above the memory limit of 32 MiB", "lower --reserve-memory or raise --limit-memory"],
    },
    {
      r: { limits: { nanoCpus: 500_000_000 }, reservations: { nanoCpus: 1e9 } },
      mentions: ["cpu reservation: 1 CPUs is above the cpu limit of 0.5 CPUs"],
    },
  ])("refuses the resources $r, saying why", ({ r, mentions }) => {
    expectVipmeshError(() => resources(r), "invalid_argument", ...mentions);
  });

  it("keeps an absolute workdir and refuses any other, saying what it takes", () => {
    expect(container({ dir: "/srv/app" }).dir).toBe("/srv/app");
    expect(container({ dir: "" })).not.toHaveProperty("dir");
    expectVipmeshError(() => container({ dir: "app" }), "invalid_argument", 'workdir "app" is not an absolute path', "--workdir");
    expectVipmeshError(() => container({ dir: "/a\0b" }), "invalid_argument", "NUL");
    expectVipmeshError(() => container({ dir: `/${"a".repeat(4096)}` }), "invalid_argument", "4096");
    expectVipmeshError(() => container({ dir: 7 }), "invalid_argument", "workdir must be a string");
  });

  it("shows bytes as people write them", () => {
    expect([formatBytes(1000), formatBytes(6 * 1024 ** 2), formatBytes(1.5 * 1024 ** 3), formatBytes(1024 ** 4)]).toEqual([
      "1000 bytes",
      "6 MiB",
      "1.5 GiB",
      "1 TiB",
    ]);
  });
});

describe("normalizeNetworkSpec", () => {
  it("fills defaults", () => {
    expect(normalizeNetworkSpec(networkInput())).toEqual({
      name: "appnet",
      driver: "overlay",
      labels: {},
      options: {},
      ipam: [],
      ingress: false,
    });
  });

  it("keeps a valid subnet and leaves the gateway to the allocator", () => {
    expect(normalizeNetworkSpec(networkInput({ ipam: [{ subnet: "10.0.3.0/24" }] })).ipam).toEqual([
      { subnet: "10.0.3.0/24", gateway: "" },
    ]);
  });

  it('accepts the "encrypted" option', () => {
    expect(normalizeNetworkSpec(networkInput({ options: { encrypted: "" } })).options).toEqual({ encrypted: "" });
  });

  it("marks an ingress network only when ingress is exactly true", () => {
    expect(normalizeNetworkSpec(networkInput({ ingress: true })).ingress).toBe(true);
    expect(normalizeNetworkSpec(networkInput({ ingress: "yes" })).ingress).toBe(false);
  });

  it.each([
    { why: "no spec", input: null, mentions: ["network spec is required"] },
    { why: "no name", input: networkInput({ name: "" }), mentions: ["network name is required"] },
    { why: "a name starting with a dot", input: networkInput({ name: ".appnet" }), mentions: ['".appnet"'] },
    { why: "an unknown driver", input: networkInput({ driver: "bridge" }), mentions: ['"bridge"', "overlay"] },
    { why: "a subnet without prefix", input: networkInput({ ipam: [{ subnet: "10.0.3.0" }] }), mentions: ['"10.0.3.0"'] },
    {
      why: "a subnet with host bits",
      input: networkInput({ ipam: [{ subnet: "10.0.3.1/24" }] }),
      mentions: ['"10.0.3.1/24"', "10.0.3.0/24"],
    },
    { why: "a /30", input: networkInput({ ipam: [{ subnet: "10.0.0.0/30" }] }), mentions: ['"10.0.0.0/30"'] },
    {
      why: "two subnets",
      input: networkInput({ ipam: [{ subnet: "10.0.3.0/24" }, { subnet: "10.0.4.0/24" }] }),
      mentions: ["one subnet"],
    },
    {
      why: "a custom gateway",
      input: networkInput({ ipam: [{ subnet: "10.0.3.0/24", gateway: "10.0.3.254" }] }),
      mentions: ["gateway"],
    },
    { why: "an unknown option", input: networkInput({ options: { mtu: "1400" } }), mentions: ['"mtu"', "encrypted"] },
    {
      why: "an option with a non-string value",
      input: networkInput({ options: { encrypted: true } }),
      mentions: ['"encrypted"'],
    },
  ])("rejects $why", ({ input, mentions }) => {
    expectVipmeshError(() => normalizeNetworkSpec(input), "invalid_argument", ...mentions);
  });
});

describe("validateSubnet: an overlay's addresses are unicast and routable", () => {
  it.each(["1.0.0.0/24", "126.255.255.0/24", "128.0.0.0/24", "169.253.255.0/24", "169.255.0.0/24", "223.255.255.0/24"])(
    "accepts %s, just outside a special range",
    (subnet) => {
      expect(validateSubnet(subnet)).toBe(subnet);
    },
  );

  it.each([
    { subnet: "0.0.0.0/8", range: "0.0.0.0/8", what: "this network" },
    { subnet: "0.255.255.0/24", range: "0.0.0.0/8", what: "this network" },
    { subnet: "127.0.0.0/8", range: "127.0.0.0/8", what: "loopback" },
    { subnet: "127.0.0.0/24", range: "127.0.0.0/8", what: "loopback" },
    { subnet: "169.0.0.0/8", range: "169.254.0.0/16", what: "link-local" },
    { subnet: "169.254.0.0/24", range: "169.254.0.0/16", what: "link-local" },
    { subnet: "224.0.0.0/24", range: "224.0.0.0/4", what: "multicast" },
    { subnet: "239.255.255.248/29", range: "224.0.0.0/4", what: "multicast" },
    { subnet: "240.0.0.0/24", range: "240.0.0.0/4", what: "reserved" },
    { subnet: "255.255.255.0/24", range: "240.0.0.0/4", what: "broadcast" },
  ])("refuses $subnet: it overlaps $range", ({ subnet, range, what }) => {
    expectVipmeshError(() => validateSubnet(subnet), "invalid_argument", `"${subnet}"`, `overlaps ${range}`, what, "10.0.3.0/24");
  });

  it("refuses such a subnet in a network spec", () => {
    expectVipmeshError(() => normalizeNetworkSpec(networkInput({ ipam: [{ subnet: "224.0.0.0/24" }] })), "invalid_argument", "multicast");
  });
});

describe("published ports: each one once per service, whatever the mode", () => {
  it.each([
    { why: "through the mesh and in host mode", second: { targetPort: 81, publishedPort: 8082, publishMode: "host" } },
    { why: "twice in host mode", first: { targetPort: 80, publishedPort: 8082, publishMode: "host" }, second: { targetPort: 81, publishedPort: 8082, publishMode: "host" } },
  ])("refuses a port published $why", ({ first, second }) => {
    const ports = [first ?? { targetPort: 80, publishedPort: 8082 }, second];
    expectVipmeshError(() => normalizeServiceSpec(withEndpoint("vip", ports)), "invalid_argument", "8082/tcp", "twice", "--publish-rm");
  });

  it("accepts the same number on another protocol in the other mode", () => {
    const ports = [
      { targetPort: 80, publishedPort: 8082 },
      { targetPort: 80, publishedPort: 8082, protocol: "udp", publishMode: "host" },
    ];
    expect(normalizeServiceSpec(withEndpoint("vip", ports)).endpointSpec.ports).toHaveLength(2);
  });
});

describe("what Docker's specs add: image, args, hostname, labels, restart policy, aliases", () => {
  it("keeps an image without a command, and its args, hostname and labels", () => {
    const spec = normalizeServiceSpec(
      serviceInput({
        taskTemplate: { container: { image: "vipmesh/whoami:1", args: ["--port", "8080"], hostname: "web-1.local", labels: { "a.b": "c" } } },
      }),
    );
    expect(spec.taskTemplate.container).toMatchObject({ image: "vipmesh/whoami:1", command: [], args: ["--port", "8080"], hostname: "web-1.local", labels: { "a.b": "c" } });
  });

  it("leaves unset fields out, so specs stored before them stay equal", () => {
    const spec = normalizeServiceSpec(serviceInput());
    expect(Object.keys(spec.taskTemplate.container).sort()).toEqual(["command", "env", "healthcheck"]);
    expect(spec.taskTemplate).not.toHaveProperty("restartPolicy");
    expect(spec.networks).toEqual([]);
  });

  it.each([
    { why: "neither command nor image", container: {}, mentions: "a command is required" },
    { why: "an image with spaces", container: { image: "vipmesh whoami" }, mentions: 'image "vipmesh whoami"' },
    { why: "a number for args", container: { image: "x", args: 3 }, mentions: "args must be a list of strings" },
    { why: "an empty program", container: { image: "x", command: [""] }, mentions: "program to run, is empty" },
    { why: "an empty program in args", container: { image: "alpine", args: [""] }, mentions: "program to run, is empty" },
    { why: "a hostname with _", container: { image: "x", hostname: "web_1" }, mentions: 'hostname "web_1"' },
    { why: "a hostname over the kernel's 64", container: { image: "x", hostname: `${"a".repeat(60)}.bcde` }, mentions: "64" },
  ])("refuses $why", ({ container, mentions }) => {
    expectVipmeshError(() => normalizeServiceSpec(serviceInput({ taskTemplate: { container } })), "invalid_argument", mentions);
  });

  it("fills a restart policy's defaults and checks its fields", () => {
    const spec = normalizeServiceSpec(serviceInput({ taskTemplate: { container: { command: ["x"] }, restartPolicy: { condition: "on-failure" } } }));
    expect(spec.taskTemplate.restartPolicy).toEqual({ condition: "on-failure", delayMs: 5000, maxAttempts: 0, windowMs: 0 });
    const bad = (restartPolicy: unknown) => serviceInput({ taskTemplate: { container: { command: ["x"] }, restartPolicy } });
    expectVipmeshError(() => normalizeServiceSpec(bad({ condition: "always" })), "invalid_argument", "restart policy condition", "on-failure");
    expectVipmeshError(() => normalizeServiceSpec(bad({ maxAttempts: -1 })), "invalid_argument", "max attempts");
    expectVipmeshError(() => normalizeServiceSpec(bad("any")), "invalid_argument", "restart policy must be an object");
  });

  it("keeps each network's aliases once, and checks them by Docker's rule", () => {
    const spec = normalizeServiceSpec(serviceInput({ networks: [{ target: "appnet", aliases: ["web", "web", "demo_web"] }, { target: "other" }] }));
    expect(spec.networks).toEqual([{ target: "appnet", aliases: ["web", "demo_web"] }, { target: "other" }]);
    expectVipmeshError(() => normalizeServiceSpec(serviceInput({ networks: [{ target: "appnet", aliases: ["-web"] }] })), "invalid_argument", 'alias name "-web"');
    expectVipmeshError(() => normalizeServiceSpec(serviceInput({ networks: ["appnet"] })), "invalid_argument", "network 1 must be an object");
  });
});
