import * as protoLoader from "@grpc/proto-loader";
import { emptyDelta, type Task, type ViewDelta, type ViewService } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { type Assignment, assignmentFromWire, assignmentToWire, logPieceFromWire, logPieceToWire, logRequestFromWire, logRequestToWire } from "./codec.ts";
import { DispatcherServiceDef, LOADER_OPTIONS } from "./proto.ts";
import { DispatcherServerDef, encodeAssignmentDown } from "./session-encoding.ts";

/** The Session method's (de)serializers: ours (uint64 as a number), or a loader's that gives uint64s as strings or Longs. */
function session(uint64: "number" | "string" | "Long" = "number") {
  if (uint64 === "number") return DispatcherServiceDef.Session;
  const definition = protoLoader.loadSync(["vipmesh/v1/dispatcher.proto"], { ...LOADER_OPTIONS, longs: uint64 === "string" ? String : undefined });
  return (definition["vipmesh.v1.DispatcherService"] as protoLoader.ServiceDefinition).Session as typeof DispatcherServiceDef.Session;
}

/** What an agent gets of a message the manager sends down, through real protobuf bytes. */
const down = (msg: object, uint64?: "string" | "Long") => session(uint64).responseDeserialize(session().responseSerialize(msg));
/** What the manager gets of a message an agent sends up. */
const up = (msg: object) => session().requestDeserialize(session().requestSerialize(msg));

const runningTask: Task = {
  id: "t1",
  version: 3,
  createdAt: "2025-01-01T00:00:00.000Z",
  updatedAt: "2025-01-01T00:00:01.000Z",
  serviceId: "s1",
  serviceName: "web",
  slot: 1,
  nodeId: "n1",
  specVersion: 2,
  spec: {
    container: {
      image: "vipmesh/whoami:1",
      command: ["serve"],
      args: ["--port", "8080"],
      hostname: "web-1",
      labels: { "com.docker.stack.namespace": "demo" },
      env: ["A=1"],
      healthcheck: { test: ["CMD", "true"], intervalMs: 1000, timeoutMs: 500, retries: 3, startPeriodMs: 0 },
      user: "1000:1000",
      capabilityAdd: ["CAP_NET_ADMIN"],
      capabilityDrop: ["ALL"],
    },
    // memory past 2^32: an int64 that a 32-bit field would lose
    resources: { limits: { nanoCpus: 500_000_000, memoryBytes: 8 * 1024 ** 3, pids: 100 } },
    placement: { constraints: ["node.labels.zone==a"] },
    forceUpdate: 1,
    restartPolicy: { condition: "on-failure", delayMs: 2000, maxAttempts: 3, windowMs: 60_000 },
  },
  desiredState: "running",
  status: { state: "running", timestamp: "2025-01-01T00:00:02.000Z", message: "started", err: "", health: "healthy" },
  networks: [{ networkId: "net1", addresses: ["10.0.1.3/24"] }],
  hostPorts: [{ protocol: "tcp", targetPort: 80, publishedPort: 8080, publishMode: "host", proxyProtocol: "v2" }],
};

/** A task with none of the optional parts: no health check, user, capabilities or limits, not drained, no host ports. */
const { hostPorts: _, ...withoutHostPorts } = runningTask;
const drainingTask: Task = {
  ...withoutHostPorts,
  id: "t2",
  slot: 2,
  spec: { container: { command: ["serve"], env: [] }, placement: { constraints: [] }, forceUpdate: 0 },
  desiredState: "shutdown",
  status: { state: "running", timestamp: "", message: "", err: "", health: "" },
  networks: [{ networkId: "net1", addresses: [] }],
  drained: true,
};

const affinityService: ViewService = {
  id: "s1",
  name: "web",
  endpointMode: "vip",
  ports: [{ protocol: "udp", targetPort: 53, publishedPort: 30053, publishMode: "ingress" }],
  virtualIps: [{ networkId: "net1", addr: "10.0.1.2/24", fwmark: 256 }],
  lbScheduler: "rr",
  lbAffinity: "client-ip",
  lbAffinityTimeoutS: 300,
  aliases: [{ networkId: "net1", names: ["frontend", "web"] }],
};

const delta: ViewDelta = {
  tasks: [runningTask, drainingTask],
  removedTasks: ["t0"],
  networks: [{ id: "net1", name: "front", subnet: "10.0.1.0/24", gateway: "10.0.1.1", vni: 4096, encrypted: true, ingress: false }],
  removedNetworks: ["net0"],
  services: [affinityService, { id: "s2", name: "db", endpointMode: "dnsrr", ports: [], virtualIps: [{ networkId: "net1", addr: "10.0.1.9/24" }], lbScheduler: "" }],
  removedServices: ["s0"],
  endpoints: [
    { key: "t1/net1", taskId: "t1", serviceId: "s1", networkId: "net1", addr: "10.0.1.3/24", mac: "02:42:0a:00:01:03", nodeId: "n2", nodeAddr: "192.168.0.2", ready: true, weight: 1 },
    { key: "t2/net1", taskId: "t2", serviceId: "s1", networkId: "net1", addr: "10.0.1.4/24", mac: "02:42:0a:00:01:04", nodeId: "n2", nodeAddr: "192.168.0.2", ready: false, weight: 0 },
  ],
  removedEndpoints: ["t0/net1"],
  peers: [{ nodeId: "n2", addr: "192.168.0.2" }],
  removedPeers: ["n3"],
};

const secret = (byte: number) => Buffer.alloc(36, byte).toString("hex");

describe("assignments", () => {
  it("come back from the wire as they went, in the domain's shapes (no wire defaults for what it leaves out)", () => {
    const sent: Assignment = { version: 7, full: false, delta };
    const received = assignmentFromWire(down({ assignment: assignmentToWire(sent) }).assignment!);
    expect(received).toStrictEqual(sent);
  });

  it("a full one, even with nothing in it, says it replaces everything", () => {
    const sent: Assignment = { version: 1, full: true, delta: emptyDelta() };
    const received = assignmentFromWire(down({ assignment: assignmentToWire(sent) }).assignment!);
    expect(received).toStrictEqual(sent);
    expect("encryption" in received).toBe(false);
  });

  it("carry the overlay keys as 36 bytes each, and give them back hex-encoded", () => {
    const encryption = { keys: [{ id: 1, secret: secret(0xab) }, { id: 2, secret: secret(0x01) }], txKeyId: 2 };
    const sent: Assignment = { version: 4, full: false, delta: emptyDelta(), encryption };
    const wire = down({ assignment: assignmentToWire(sent) }).assignment!;
    expect(wire.encryption!.keys.map((k: { secret: Buffer }) => k.secret)).toEqual([Buffer.alloc(36, 0xab), Buffer.alloc(36, 0x01)]);
    expect(assignmentFromWire(wire).encryption).toStrictEqual(encryption);
  });

  it("give numbers for uint64s and int64s that a loader gives as strings or Longs", () => {
    const sent: Assignment = { version: 5_000_000_000, full: false, delta: { ...emptyDelta(), tasks: [{ ...runningTask, version: 6_000_000_000 }] } };
    for (const uint64 of ["string", "Long"] as const) {
      const wire = down({ assignment: assignmentToWire(sent) }, uint64).assignment!;
      expect(typeof wire.version).not.toBe("number");
      expect(typeof wire.tasks[0]?.spec?.resources?.limits?.memoryBytes).toBe(uint64 === "string" ? "string" : "object");
      expect(assignmentFromWire(wire)).toStrictEqual(sent);
    }
  });
});

describe("an assignment with shared parts", () => {
  const half = (d: ViewDelta, pick: (i: number) => boolean): ViewDelta =>
    Object.fromEntries(Object.entries(d).map(([k, list]) => [k, (list as unknown[]).filter((_, i) => pick(i))])) as unknown as ViewDelta;

  it("decodes as one assignment: its own part's version, keys and lists, then each part's lists", () => {
    const encryption = { keys: [{ id: 1, secret: secret(0xab) }], txKeyId: 1 };
    const own: Assignment = { version: 300, full: true, delta: half(delta, (i) => i === 0), encryption };
    const parts = [half(delta, (i) => i === 1), { ...emptyDelta(), removedPeers: ["n9"] }];
    const bytes = encodeAssignmentDown(own, parts);
    const received = assignmentFromWire(session().responseDeserialize(bytes).assignment!);
    const whole = (k: keyof ViewDelta) => [...own.delta[k], ...parts.flatMap((p) => p[k] as unknown[])];
    expect(received).toStrictEqual({ ...own, delta: Object.fromEntries(Object.keys(delta).map((k) => [k, whole(k as keyof ViewDelta)])) });
  });

  it("encodes a shared part once, and goes through the server's serializer as it is", () => {
    const part = half(delta, () => true);
    const a = encodeAssignmentDown({ version: 1, full: false, delta: emptyDelta() }, [part]);
    const b = encodeAssignmentDown({ version: 300, full: false, delta: emptyDelta() }, [part]);
    expect(a.subarray(a.length - 100)).toEqual(b.subarray(b.length - 100));
    expect(assignmentFromWire(session().responseDeserialize(b).assignment!)).toStrictEqual({ version: 300, full: false, delta: part });
    // the same parts in the same version: the same bytes, for every session that gets them
    expect(encodeAssignmentDown({ version: 300, full: false, delta: emptyDelta() }, [part])).toBe(b);
    expect(DispatcherServerDef.Session.responseSerialize(a)).toBe(a);
    const plain = { assignment: assignmentToWire({ version: 3, full: false, delta }) };
    expect(DispatcherServerDef.Session.responseSerialize(plain)).toEqual(session().responseSerialize(plain));
  });
});

describe("the log relay's messages", () => {
  it("a request goes down with its ID", () => {
    const request = { taskIds: ["t1", "t2"], follow: true, tail: 10 };
    expect(logRequestFromWire(down({ logRequest: logRequestToWire(42, request) }).logRequest!)).toStrictEqual({ requestId: 42, request });
  });

  it("a piece of log comes up with its request's ID, and only with what it holds", () => {
    const data = { taskId: "t1", data: Buffer.from("hello\n") };
    expect(logPieceFromWire(up({ logData: logPieceToWire(42, data) }).logData!)).toStrictEqual({ requestId: 42, piece: data });
    const end = { taskId: "t2", eof: true, error: "no such task" };
    expect(logPieceFromWire(up({ logData: logPieceToWire(43, end) }).logData!)).toStrictEqual({ requestId: 43, piece: end });
  });
});
