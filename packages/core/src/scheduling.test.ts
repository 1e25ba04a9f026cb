import { describe, expect, it } from "vitest";
import {
  eligibleNodes,
  hostPortReason,
  hostPortsInUse,
  NodeLoad,
  noNodeReason,
  nodeRuntimes,
  type PlacementLoad,
  pickNode,
  reserve,
  reservedResources,
  useHostPorts,
  withHostPortsFree,
  withResourcesFree,
} from "./scheduling.ts";
import type { Node, NodeAvailability, NodeState, PortConfig, Resources, Task, TaskRuntime, TaskSpec, TaskState } from "./types.ts";

interface NodeOptions {
  state?: NodeState;
  availability?: NodeAvailability;
  labels?: Record<string, string>;
  runtimes?: TaskRuntime[];
  resources?: Resources;
}

const node = (hostname: string, o: NodeOptions = {}): Node => ({
  id: `id-${hostname}`,
  version: 1,
  createdAt: "",
  updatedAt: "",
  spec: { labels: o.labels ?? {}, availability: o.availability ?? "active" },
  description: { hostname, ...(o.runtimes ? { runtimes: o.runtimes } : {}), ...(o.resources ? { resources: o.resources } : {}) },
  status: { state: o.state ?? "ready", message: "", addr: "192.168.0.1" },
});

const taskSpec = (...constraints: string[]): TaskSpec => ({
  container: { command: ["run"], env: [] },
  placement: { constraints },
  forceUpdate: 0,
});

/** Load from per-hostname counts: { n1: [serviceTasks, allTasks] }. */
const load = (counts: Record<string, [number, number]>): PlacementLoad => ({
  serviceTasks: new Map(Object.entries(counts).map(([h, [s]]) => [`id-${h}`, s])),
  allTasks: new Map(Object.entries(counts).map(([h, [, a]]) => [`id-${h}`, a])),
});

const hostnames = (nodes: readonly Node[]) => nodes.map((n) => n.description.hostname);

describe("eligibleNodes", () => {
  const nodes = [
    node("ready"),
    node("down", { state: "down" }),
    node("unknown", { state: "unknown" }),
    node("drained", { availability: "drain" }),
    node("zone-a", { labels: { zone: "a" } }),
    node("zone-b", { labels: { zone: "b" } }),
  ];

  it("keeps ready, active nodes only", () => {
    expect(hostnames(eligibleNodes(nodes, taskSpec()))).toEqual(["ready", "zone-a", "zone-b"]);
  });

  it("drops nodes that fail a constraint", () => {
    expect(hostnames(eligibleNodes(nodes, taskSpec("node.labels.zone==a")))).toEqual(["zone-a"]);
    expect(hostnames(eligibleNodes(nodes, taskSpec("node.labels.zone!=a")))).toEqual(["ready", "zone-b"]);
    expect(hostnames(eligibleNodes(nodes, taskSpec("node.hostname==down")))).toEqual([]);
  });
});

describe("pickNode", () => {
  const [n1, n2, n3] = [node("n1"), node("n2"), node("n3")];
  const all = [n3, n1, n2];

  it("picks the node with the fewest tasks of the service", () => {
    expect(pickNode(all, load({ n1: [2, 2], n2: [1, 9], n3: [2, 0] }))).toBe(n2);
  });

  it("breaks a tie on service tasks by the fewest tasks overall", () => {
    expect(pickNode(all, load({ n1: [1, 5], n2: [1, 3], n3: [1, 4] }))).toBe(n2);
  });

  it("breaks a full tie by hostname", () => {
    expect(pickNode(all, load({}))).toBe(n1);
    expect(pickNode([n3, n2], load({ n1: [0, 0] }))).toBe(n2);
  });

  it("counts a node missing from the load as empty", () => {
    expect(pickNode(all, load({ n1: [1, 1], n2: [1, 1] }))).toBe(n3);
  });

  it("spreads a service's replicas over the nodes", () => {
    const l = load({});
    const placed: string[] = [];
    for (let i = 0; i < 6; i++) {
      const n = pickNode(all, l)!;
      placed.push(n.description.hostname);
      l.serviceTasks.set(n.id, (l.serviceTasks.get(n.id) ?? 0) + 1);
      l.allTasks.set(n.id, (l.allTasks.get(n.id) ?? 0) + 1);
    }
    expect(placed).toEqual(["n1", "n2", "n3", "n1", "n2", "n3"]);
  });

  it("returns undefined without candidates", () => {
    expect(pickNode([], load({}))).toBeUndefined();
  });
});

describe("noNodeReason", () => {
  it.each([
    { why: "no nodes", nodes: [], reason: "no suitable node (no node has joined the cluster)" },
    {
      why: "none ready",
      nodes: [node("a", { state: "down" }), node("b", { state: "unknown" })],
      reason: "no suitable node (0 of 2 nodes ready)",
    },
    {
      why: "all ready nodes drained",
      nodes: [node("a", { availability: "drain" }), node("b", { availability: "drain" }), node("c", { state: "down" })],
      reason: "no suitable node (all 2 ready nodes are drained)",
    },
    {
      why: "constraints",
      nodes: [node("a"), node("b"), node("c", { availability: "drain" })],
      reason: "no suitable node (scheduling constraints not satisfied on 2 nodes)",
    },
  ])("explains $why", ({ nodes, reason }) => {
    expect(noNodeReason(nodes)).toBe(reason);
  });
});

describe("host-mode ports", () => {
  const [n1, n2, n3] = [node("n1"), node("n2"), node("n3")];
  const port = (publishedPort: number, protocol: PortConfig["protocol"] = "tcp"): PortConfig => ({ protocol, targetPort: 80, publishedPort, publishMode: "host" });
  const task = (nodeId: string, state: TaskState, hostPorts: PortConfig[]): Task =>
    ({ id: `t-${nodeId}-${state}`, nodeId, status: { state }, hostPorts }) as unknown as Task;

  it("are in use on a node from assignment until the task has finished", () => {
    const inUse = hostPortsInUse([
      task("id-n1", "running", [port(8080)]),
      task("id-n2", "assigned", [port(8080, "udp"), port(9090)]),
      task("id-n3", "pending", [port(8080)]),
      task("id-n3", "shutdown", [port(8080)]),
      task("id-n3", "failed", [port(8080)]),
      task("id-n3", "running", []),
    ]);
    expect(inUse).toEqual(new Map([["id-n1", new Set(["tcp/8080"])], ["id-n2", new Set(["udp/8080", "tcp/9090"])]]));
  });

  it("keep a second task publishing one off the nodes that have it", () => {
    const inUse = hostPortsInUse([task("id-n1", "running", [port(8080)]), task("id-n2", "starting", [port(8080, "udp")])]);
    expect(hostnames(withHostPortsFree([n1, n2, n3], [port(8080)], inUse))).toEqual(["n2", "n3"]);
    expect(hostnames(withHostPortsFree([n1, n2, n3], [port(9090), port(8080, "udp")], inUse))).toEqual(["n1", "n3"]);
    expect(hostnames(withHostPortsFree([n1, n2, n3], [], inUse))).toEqual(["n1", "n2", "n3"]);
  });

  it("count a task placed in the same pass: replicas of one service spread, one per node", () => {
    const inUse = hostPortsInUse([]);
    const placed: string[] = [];
    for (let i = 0; i < 3; i++) {
      const n = pickNode(withHostPortsFree([n1, n2], [port(8080)], inUse), load({}));
      if (!n) break;
      useHostPorts(inUse, n.id, [port(8080)]);
      placed.push(n.description.hostname);
    }
    expect(placed).toEqual(["n1", "n2"]);
  });

  it("say why a task that has none left stays pending", () => {
    expect(hostPortReason([port(8080)], 2)).toBe("no suitable node (host-mode port 8080/tcp already in use on all 2 nodes the task may run on)");
    expect(hostPortReason([port(8080), port(53, "udp")], 1)).toBe(
      "no suitable node (host-mode ports 8080/tcp, 53/udp already in use on the 1 node the task may run on)",
    );
  });
});

describe("runtimes", () => {
  const image = (reservations?: Resources): TaskSpec => ({
    container: { image: "nginx:1.25", command: [], env: [] },
    ...(reservations ? { resources: { limits: {}, reservations } } : {}),
    placement: { constraints: [] },
    forceUpdate: 0,
  });
  const nodes = [node("old"), node("proc", { runtimes: ["process"] }), node("both", { runtimes: ["process", "container"] }), node("ctr", { runtimes: ["container"] })];

  it("a node stored without runtimes has the process runtime only", () => {
    expect(nodeRuntimes(node("old"))).toEqual(["process"]);
    expect(nodeRuntimes(node("ctr", { runtimes: ["container"] }))).toEqual(["container"]);
  });

  it("an image task goes only to nodes with the container runtime; a command or a known image only to nodes with the process one", () => {
    expect(hostnames(eligibleNodes(nodes, image()))).toEqual(["both", "ctr"]);
    expect(hostnames(eligibleNodes(nodes, taskSpec()))).toEqual(["old", "proc", "both"]);
    const whoami: TaskSpec = { ...taskSpec(), container: { image: "vipmesh/whoami", command: [], env: [] } };
    expect(hostnames(eligibleNodes(nodes, whoami))).toEqual(["old", "proc", "both"]);
  });

  it("say which nodes lack the runtime, beside the constraints", () => {
    expect(noNodeReason([node("a"), node("b", { runtimes: ["process"] })], image())).toBe("no suitable node (2 nodes lack the container runtime)");
    const constrained: TaskSpec = { ...image(), placement: { constraints: ["node.labels.zone==a"] } };
    expect(noNodeReason([node("a"), node("b", { runtimes: ["container"] }), node("c", { state: "down" })], constrained)).toBe(
      "no suitable node (1 node lacks the container runtime, scheduling constraints not satisfied on 1 node)",
    );
    expect(noNodeReason([node("a", { runtimes: ["container"] })], taskSpec())).toBe("no suitable node (1 node lacks the process runtime)");
  });
});

describe("reservations", () => {
  const GiB = 1024 ** 3;
  const MiB = 1024 ** 2;
  const spec = (reservations?: Resources): TaskSpec => ({ ...taskSpec(), ...(reservations ? { resources: { limits: {}, reservations } } : {}) });
  const task = (nodeId: string, state: TaskState, reservations: Resources, desiredState: Task["desiredState"] = "running"): Task =>
    ({ id: `t-${nodeId}-${state}`, nodeId, desiredState, status: { state }, spec: spec(reservations) }) as unknown as Task;
  const big = node("big", { resources: { nanoCpus: 4e9, memoryBytes: 4 * GiB } });
  const small = node("small", { resources: { nanoCpus: 1e9, memoryBytes: 1 * GiB } });
  const silent = node("silent");

  it("are held by placed tasks meant to run, until they end or are told to stop", () => {
    const reserved = reservedResources([
      task("id-big", "running", { memoryBytes: GiB }),
      task("id-big", "preparing", { nanoCpus: 5e8, memoryBytes: 512 * MiB }),
      task("id-big", "running", { memoryBytes: GiB }, "shutdown"),
      task("id-big", "failed", { memoryBytes: GiB }),
      task("id-small", "pending", { memoryBytes: GiB }),
      task("id-small", "running", {}),
    ]);
    expect(reserved).toEqual(new Map([["id-big", { nanoCpus: 5e8, memoryBytes: 1.5 * GiB }]]));
  });

  it("a node fits when what it offers, less what is reserved on it, holds the task's", () => {
    const reserved = reservedResources([task("id-small", "running", { memoryBytes: 768 * MiB })]);
    expect(hostnames(withResourcesFree([big, small, silent], spec({ memoryBytes: 256 * MiB }), reserved))).toEqual(["big", "small"]);
    expect(hostnames(withResourcesFree([big, small, silent], spec({ memoryBytes: 512 * MiB }), reserved))).toEqual(["big"]);
    expect(hostnames(withResourcesFree([big, small, silent], spec({ nanoCpus: 2e9 }), reserved))).toEqual(["big"]);
  });

  it("a node that did not say its resources takes only tasks that reserve nothing", () => {
    expect(hostnames(withResourcesFree([big, silent], spec(), new Map()))).toEqual(["big", "silent"]);
    expect(hostnames(withResourcesFree([big, silent], spec({ nanoCpus: 1 }), new Map()))).toEqual(["big"]);
  });

  it("count a task placed in the same pass: a full node takes no more", () => {
    const reserved = reservedResources([]);
    const placed: string[] = [];
    for (let i = 0; i < 4; i++) {
      const n = pickNode(withResourcesFree([small], spec({ memoryBytes: 400 * MiB }), reserved), load({}));
      if (!n) break;
      reserve(reserved, n.id, spec({ memoryBytes: 400 * MiB }));
      placed.push(n.description.hostname);
    }
    expect(placed).toEqual(["small", "small"]);
  });

  it("kept as tasks change (NodeLoad): each task counts once, as it was last set, and gives back what it held", () => {
    const placed = (id: string, nodeId: string, state: TaskState, desiredState: Task["desiredState"] = "running"): Task =>
      ({ id, nodeId, desiredState, status: { state }, spec: spec({ memoryBytes: GiB }) }) as unknown as Task;
    const load = new NodeLoad([placed("t1", "id-big", "running"), placed("t2", "id-big", "pending"), placed("t3", "", "pending")]);
    expect(load.tasks).toEqual(new Map([["id-big", 2]])); // a pending task meant for its node spreads there, holding nothing yet
    expect(load.reserved).toEqual(new Map([["id-big", { nanoCpus: 0, memoryBytes: GiB }]]));
    load.set("t3", placed("t3", "id-small", "assigned"));
    load.set("t3", placed("t3", "id-small", "assigned")); // the same again, as its commit says it
    expect(load.tasks.get("id-small")).toBe(1);
    expect(load.reserved.get("id-small")).toEqual({ nanoCpus: 0, memoryBytes: GiB });
    load.set("t1", placed("t1", "id-big", "running", "shutdown"));
    load.set("t3", undefined);
    expect(load.tasks).toEqual(new Map([["id-big", 1], ["id-small", 0]]));
    expect(load.reserved).toEqual(new Map());
    expect(load.countedAs("t3")).toBeUndefined();
    expect(reservedResources([load.countedAs("t1")!, load.countedAs("t2")!])).toEqual(load.reserved);
  });

  it("say why no node has room, per resource", () => {
    const reserved = reservedResources([task("id-small", "running", { memoryBytes: 512 * MiB }), task("id-big", "running", { memoryBytes: 3.5 * GiB })]);
    expect(noNodeReason([small], spec({ memoryBytes: 768 * MiB }), reserved)).toBe(
      "no suitable node (1 node has not enough memory for 768 MiB: 512 MiB reserved of 1 GiB)",
    );
    expect(noNodeReason([small, big, silent, node("p", { runtimes: ["container"] })], spec({ memoryBytes: 768 * MiB }), reserved)).toBe(
      "no suitable node (1 node lacks the process runtime, 1 node does not say its memory to reserve from, 2 nodes have not enough memory for 768 MiB: at most 512 MiB free)",
    );
    expect(noNodeReason([small], spec({ nanoCpus: 2e9 }), reserved)).toBe("no suitable node (1 node has not enough CPU for 2 CPUs: 0 CPUs reserved of 1 CPUs)");
  });
});
