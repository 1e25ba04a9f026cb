// The agent's sync, run against every driver's Fake: a view goes in through a
// FakeSession, and each Fake's dump comes out (golden files in testdata/agent/).

import { waitFor } from "@vipmesh/api";
import { macForIpv4, nodeRemoved, type PortConfig, type Task, type ViewEndpoint, type ViewNetwork, type ViewService } from "@vipmesh/core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Agent } from "./agent.ts";
import { FakeDns } from "./dns/fake.ts";
import { FakeIpsec } from "./ipsec/fake.ts";
import { FakeLoadBalancer } from "./lb/fake.ts";
import { FakeMesh } from "./mesh/fake.ts";
import { FakeOverlay } from "./overlay/fake.ts";
import { FakeSandboxes } from "./sandbox/fake.ts";
import { FakeSession } from "./session/fake.ts";
import { FakeRuntime } from "./tasks/fake.ts";

const NODE = "node1";
const NODE_ADDR = "192.168.100.11";
const PEER_ADDR = "192.168.100.12";
const PREFIX = "vmt-";

const network = (id: string, vni: number, subnet: string, extra: Partial<ViewNetwork> = {}): ViewNetwork => ({
  id,
  name: id,
  subnet,
  gateway: subnet.replace(/\.0\/\d+$/, ".1"),
  vni,
  encrypted: false,
  ingress: false,
  ...extra,
});
const COLLABNET = network("collabnet", 4096, "10.0.3.0/24");
const SECRETNET = network("secretnet", 4097, "10.0.4.0/24", { encrypted: true });
const INGRESS = network("ingress", 4098, "10.255.0.0/16", { ingress: true });

const service = (id: string, vips: [string, string][], ports: PortConfig[] = []): ViewService => ({
  id,
  name: id,
  endpointMode: "vip",
  ports,
  virtualIps: vips.map(([networkId, addr]) => ({ networkId, addr })),
  lbScheduler: "rr",
});

interface TaskShape {
  id: string;
  service: string;
  nodeId?: string;
  /** [networkId, CIDR] per attachment, in order. */
  on: [string, string][];
  desired?: Task["desiredState"];
  health?: Task["status"]["health"];
  drained?: boolean;
  check?: boolean;
  hostPorts?: PortConfig[];
  /** In place of the default command. */
  container?: Partial<Task["spec"]["container"]>;
}

function task(s: TaskShape): Task {
  return {
    id: s.id,
    version: 1,
    createdAt: "",
    updatedAt: "",
    serviceId: s.service,
    serviceName: s.service,
    slot: 1,
    nodeId: s.nodeId ?? NODE,
    specVersion: 1,
    spec: {
      container: {
        command: ["whoami", "--port", "80"],
        env: [],
        ...(s.check ? { healthcheck: { test: ["true"], intervalMs: 60_000, timeoutMs: 1000, retries: 3, startPeriodMs: 0 } } : {}),
        ...s.container,
      },
      placement: { constraints: [] },
      forceUpdate: 0,
    },
    desiredState: s.desired ?? "running",
    status: { state: "running", timestamp: "", message: "", err: "", health: s.health ?? "" },
    networks: s.on.map(([networkId, addr]) => ({ networkId, addresses: [addr] })),
    ...(s.drained ? { drained: true } : {}),
    ...(s.hostPorts ? { hostPorts: s.hostPorts } : {}),
  };
}

/** The endpoints a task adds to every view that holds its network. */
const endpointsOf = (t: Task, nodeAddr = t.nodeId === NODE ? NODE_ADDR : PEER_ADDR, ready = true): ViewEndpoint[] =>
  t.networks.map((a) => ({
    key: `${t.id}/${a.networkId}`,
    taskId: t.id,
    serviceId: t.serviceId,
    networkId: a.networkId,
    addr: a.addresses[0]!,
    mac: macForIpv4(a.addresses[0]!),
    nodeId: t.nodeId,
    nodeAddr,
    ready,
    weight: 1,
  }));

/** The seed scenario on one node: collabweb's tasks here and on a peer, collab-box here. */
const WEB1 = task({ id: "aaaaaaaaaaaa0001", service: "collabweb", on: [["collabnet", "10.0.3.3/24"]] });
const WEB2 = task({ id: "aaaaaaaaaaaa0002", service: "collabweb", nodeId: "node2", on: [["collabnet", "10.0.3.5/24"]] });
const BOX = task({ id: "bbbbbbbbbbbb0001", service: "collab-box", on: [["collabnet", "10.0.3.7/24"]] });
const seed = () => ({
  networks: [COLLABNET],
  services: [service("collabweb", [["collabnet", "10.0.3.2/24"]]), service("collab-box", [["collabnet", "10.0.3.4/24"]])],
  tasks: [WEB1, BOX], // a node's view holds its own tasks only
  endpoints: [WEB1, WEB2, BOX].flatMap((t) => endpointsOf(t)),
  peers: [{ nodeId: "node2", addr: PEER_ADDR }],
});

/** The seed scenario with collabweb published on port 8080 through the routing mesh: this node has an ingress sandbox. */
const meshSeed = () => {
  const web = service("collabweb", [["collabnet", "10.0.3.2/24"], ["ingress", "10.255.0.2/16"]], [
    { protocol: "tcp", targetPort: 80, publishedPort: 8080, publishMode: "ingress" },
  ]);
  const webOnIngress = { ...WEB1, networks: [...WEB1.networks, { networkId: "ingress", addresses: ["10.255.0.5/16"] }] };
  return {
    ...seed(),
    networks: [COLLABNET, INGRESS],
    services: [web, service("collab-box", [["collabnet", "10.0.3.4/24"]])],
    tasks: [webOnIngress, BOX],
    endpoints: [
      ...[webOnIngress, WEB2, BOX].flatMap((t) => endpointsOf(t)),
      { ...endpointsOf(task({ id: "ingress", service: "", on: [["ingress", "10.255.0.3/16"]] }))[0]!, key: `ingress-sandbox/${NODE}`, taskId: "", serviceId: "" },
    ],
  };
};

const NAMES = ["collabweb", "tasks.collabweb", "collab-box", "nothing-here"];

let stateDirs: string[] = [];
afterEach(() => {
  for (const d of stateDirs) rmSync(d, { recursive: true, force: true });
  stateDirs = [];
});

function harness(
  opts: { runtime?: FakeRuntime; containers?: FakeRuntime; sandboxes?: FakeSandboxes; overlay?: FakeOverlay; mesh?: FakeMesh; ipsec?: FakeIpsec } = {},
) {
  const stateDir = mkdtempSync(join(tmpdir(), "vipmesh-agent-test-"));
  stateDirs.push(stateDir);
  const session = new FakeSession(NODE);
  const overlay = opts.overlay ?? new FakeOverlay();
  const d = {
    session,
    overlay,
    sandboxes: opts.sandboxes ?? new FakeSandboxes({ overlay }),
    loadBalancer: new FakeLoadBalancer(),
    dns: new FakeDns(),
    mesh: opts.mesh ?? new FakeMesh(),
    ipsec: opts.ipsec ?? new FakeIpsec(),
    runtime: opts.runtime ?? new FakeRuntime(),
  };
  const logs: string[] = [];
  const agent = new Agent({
    ...d,
    managers: ["unused"],
    advertiseAddr: NODE_ADDR,
    hostname: NODE,
    stateDir,
    sandboxPrefix: PREFIX,
    binDir: "/nonexistent",
    stopGraceMs: 60_000,
    ...(opts.containers ? { containers: opts.containers } : {}),
    log: (line) => logs.push(line),
  });
  const dump = () =>
    [
      "# overlay",
      d.overlay.dump(),
      "# ipsec",
      d.ipsec.dump(),
      "# sandboxes",
      d.sandboxes.dump(),
      "# load balancing",
      d.loadBalancer.dump(),
      "# dns",
      d.dns.dump(NAMES),
      "# mesh",
      d.mesh.dump(),
      "# tasks",
      d.runtime.dump(),
      session.lastReports(),
    ].join("\n");
  return { ...d, agent, dump, logs };
}

describe("Agent.sync against the Fakes", () => {
  it("brings the seed scenario up: overlay to the peer, a sandbox per task, VIPs balanced, names resolved, tasks running", async () => {
    const h = harness();
    h.agent.start();
    await h.session.assign(seed(), true);
    await expect(h.dump()).toMatchFileSnapshot("testdata/agent/seed.golden");
    expect(h.loadBalancer.backendsOf(`${PREFIX}${BOX.id}`, "10.0.3.2")).toEqual(["10.0.3.3", "10.0.3.5"]);

    // the same view again changes nothing in the kernel and starts nothing
    const [overlayWrites, sandboxWrites, events] = [h.overlay.writes, h.sandboxes.writes, h.runtime.events.length];
    await h.session.assign({});
    expect([h.overlay.writes, h.sandboxes.writes, h.runtime.events.length]).toEqual([overlayWrites, sandboxWrites, events]);
    await h.agent.stop();
  });

  it("follows a scale-up on a peer: one more backend everywhere, one more remote in the overlay", async () => {
    const h = harness();
    h.agent.start();
    await h.session.assign(seed(), true);
    const web3 = task({ id: "aaaaaaaaaaaa0003", service: "collabweb", nodeId: "node2", on: [["collabnet", "10.0.3.6/24"]] });
    await h.session.assign({ endpoints: endpointsOf(web3) });
    expect(h.loadBalancer.backendsOf(`${PREFIX}${BOX.id}`, "10.0.3.2")).toEqual(["10.0.3.3", "10.0.3.5", "10.0.3.6"]);
    expect(h.dns.resolve(`${PREFIX}${BOX.id}`, "tasks.collabweb")).toEqual(["10.0.3.3", "10.0.3.5", "10.0.3.6"]);
    expect(h.overlay.nodeFor(4096, "10.0.3.6")).toBe(PEER_ADDR);
    await h.agent.stop();
  });

  it("after a restart adopts what still runs: no task started again, no sandbox made anew, health kept", async () => {
    const overlay = new FakeOverlay();
    const sandboxes = new FakeSandboxes({ overlay });
    const first = harness({ overlay, sandboxes });
    first.agent.start();
    await first.session.assign(seed(), true);
    const ifindex = sandboxes.ifindex(`${PREFIX}${WEB1.id}`, "eth0");
    await first.agent.stop();

    // a new agent on the same kernel: the runtime still runs both tasks; the manager says WEB1 is healthy
    const runtime = new FakeRuntime();
    runtime.leftBehind = first.runtime.known().map((id) => ({
      spec: { taskId: id, serviceName: "", sandbox: `${PREFIX}${id}`, hostname: id.slice(0, 12), command: ["whoami", "--port", "80"], env: [] },
      running: true,
    }));
    const second = harness({ overlay, sandboxes, runtime });
    second.agent.start();
    const checked = { ...WEB1, spec: { ...WEB1.spec, container: { ...WEB1.spec.container, healthcheck: { test: ["true"], intervalMs: 60_000, timeoutMs: 1000, retries: 3, startPeriodMs: 0 } } } };
    checked.status = { ...checked.status, health: "healthy" };
    runtime.checks.set(WEB1.id, false); // a check that fails once does not take a healthy task out (retries: 3)
    await second.session.assign({ ...seed(), tasks: [checked, BOX] }, true);
    expect(runtime.events.filter((e) => e.startsWith("start"))).toEqual([]);
    expect(sandboxes.ifindex(`${PREFIX}${WEB1.id}`, "eth0")).toBe(ifindex);
    expect(second.session.lastReports()).toBe(`report ${WEB1.id} running/healthy\nreport ${BOX.id} running/\n`);
    await expect(second.dump()).toMatchFileSnapshot("testdata/agent/seed-adopted.golden");
    await second.agent.stop();
  });

  it("a task that ended while no agent ran is reported failed, and its leftovers are removed", async () => {
    const runtime = new FakeRuntime();
    runtime.leftBehind = [
      { spec: { taskId: WEB1.id, serviceName: "collabweb", sandbox: `${PREFIX}${WEB1.id}`, hostname: "x", command: ["x"], env: [] }, running: false },
      { spec: { taskId: "cccccccccccc0001", serviceName: "gone", sandbox: `${PREFIX}cccccccccccc0001`, hostname: "x", command: ["x"], env: [] }, running: true },
    ];
    const h = harness({ runtime });
    h.agent.start();
    await h.session.assign(seed(), true);
    expect(h.session.lastReports()).toContain(`report ${WEB1.id} failed/ exited while the agent was not running`);
    expect(runtime.events).toContain("stop cccccccccccc0001");
    expect(runtime.known()).not.toContain("cccccccccccc0001");
    await h.agent.stop();
  });

  it("a failing mesh holds up nothing else: tasks start, VIPs are balanced, the view is acknowledged, the mesh is tried again", async () => {
    const mesh = new FakeMesh();
    mesh.failNextPublish();
    const h = harness({ mesh });
    h.agent.start();
    await h.session.assign(meshSeed(), true);
    expect(h.runtime.events.filter((e) => e.startsWith("start"))).toHaveLength(2);
    expect(h.logs.some((l) => l.includes("routing mesh not in place"))).toBe(true);
    expect(h.mesh.dump()).not.toContain("mesh tcp/8080");
    // tried again by itself, within a second
    await waitFor("the mesh published", () => h.mesh.dump().includes("mesh tcp/8080 -> 10.255.0.2:80"), 5000);
    await expect(h.dump()).toMatchFileSnapshot("testdata/agent/mesh.golden");
    await h.agent.stop();
  });

  it("a node that cannot encrypt refuses the encrypted network's tasks with the reason, and keeps the others", async () => {
    const ipsec = new FakeIpsec();
    ipsec.failure = new Error("this kernel has no ESP for IPv4 (module esp4)");
    const h = harness({ ipsec });
    h.session.encryption = { keys: [{ id: 1, secret: "00".repeat(36) }], txKeyId: 1 };
    h.agent.start();
    const secret = task({ id: "dddddddddddd0001", service: "vault", on: [["secretnet", "10.0.4.3/24"]] });
    await h.session.assign(
      {
        ...seed(),
        networks: [COLLABNET, SECRETNET],
        services: [...seed().services, service("vault", [["secretnet", "10.0.4.2/24"]])],
        tasks: [WEB1, BOX, secret],
        endpoints: [...seed().endpoints, ...endpointsOf(secret)],
      },
      true,
    );
    expect(h.session.lastReports()).toContain(
      `report ${secret.id} rejected/ network secretnet is encrypted and this node cannot encrypt its overlay traffic (this kernel has no ESP for IPv4 (module esp4))`,
    );
    expect(h.overlay.hasNetwork(4097)).toBe(false); // no plaintext tunnel for it
    expect(h.runtime.isRunning(WEB1.id) && h.runtime.isRunning(BOX.id)).toBe(true);
    expect(h.logs.filter((l) => l.startsWith("encrypted networks stay down"))).toHaveLength(1);
    await h.agent.stop();
  });

  it("a task that cannot start fails alone; the others start", async () => {
    const runtime = new FakeRuntime();
    const h = harness({ runtime });
    h.agent.start();
    // a task on a network this node has no overlay for cannot get its sandbox
    const lost = task({ id: "eeeeeeeeeeee0001", service: "collabweb", on: [["nowhere", "10.9.0.3/24"]] });
    await h.session.assign({ ...seed(), networks: [COLLABNET, network("nowhere", 4099, "10.9.0.0/24")], tasks: [WEB1, BOX, lost] }, true);
    expect(runtime.isRunning(WEB1.id) && runtime.isRunning(BOX.id)).toBe(true);
    expect(h.session.lastReports()).toContain(`report ${lost.id} running/`); // the fake overlay has the network: it starts
    runtime.startFailure = new Error("no such command");
    const broken = task({ id: "ffffffffffff0001", service: "collab-box", on: [["collabnet", "10.0.3.9/24"]] });
    await h.session.assign({ tasks: [broken], endpoints: endpointsOf(broken, NODE_ADDR, false) });
    expect(h.session.lastReports()).toContain(`report ${broken.id} failed/ cannot start: no such command`);
    expect(h.logs.some((l) => l.includes(`task ${broken.id} cannot start`))).toBe(true);
    await h.agent.stop();
  });

  it("runs what the task's image and command say; a task with nothing it can run is rejected saying why, and gets no sandbox", async () => {
    const h = harness();
    h.agent.start();
    const image = task({ id: "gggggggggggg0001", service: "collabweb", on: [["collabnet", "10.0.3.9/24"]], container: { image: "docker.io/vipmesh/whoami:1@sha256:" + "a".repeat(64), command: [], hostname: "web-1" } });
    const nginx = task({ id: "gggggggggggg0002", service: "collab-box", on: [["collabnet", "10.0.3.10/24"]], container: { image: "nginx:1.27", command: [] } });
    const args = task({ id: "gggggggggggg0003", service: "collab-box", on: [["collabnet", "10.0.3.11/24"]], container: { command: [], args: ["sleep", "60"] } });
    await h.session.assign({ ...seed(), tasks: [WEB1, BOX, image, nginx, args] }, true);
    expect(h.runtime.dump()).toMatch(new RegExp(`task ${image.id} running in \\S+ as web-1: vipmesh whoami --port 80\n`));
    expect(h.sandboxes.dump()).toContain(`task ${image.id} hostname web-1`);
    expect(h.runtime.dump()).toContain(`as ${args.id.slice(0, 12)}: sleep 60`);
    expect(h.session.lastReports()).toContain(
      `report ${nginx.id} rejected/ this node has no container runtime for image "nginx:1.27": run containerd and give the agent --containerd-socket`,
    );
    expect(h.runtime.isRunning(nginx.id)).toBe(false);
    expect(h.sandboxes.dump()).not.toContain(`task ${nginx.id}`);
    expect(h.runtime.isRunning(WEB1.id) && h.runtime.isRunning(BOX.id)).toBe(true);
    await h.agent.stop();
  });

  it("runs an image task with the container runtime once its image is ready, preparing meanwhile with the pull's progress; an image not to be had is rejected", async () => {
    const containers = new FakeRuntime();
    const h = harness({ containers });
    const pulling = "pulling docker.io/library/nginx:1.27: 12.3 MB of 67.1 MB";
    containers.setImage("nginx:1.27", { state: "preparing", message: pulling });
    containers.setImage("nope:1", { state: "failed", error: 'image "docker.io/library/nope:1" cannot be pulled: no such tag' });
    h.agent.start();
    const nginx = task({ id: "gggggggggggg0002", service: "collab-box", on: [["collabnet", "10.0.3.10/24"]], container: { image: "nginx:1.27", command: [] } });
    const nope = task({ id: "gggggggggggg0004", service: "collab-box", on: [["collabnet", "10.0.3.12/24"]], container: { image: "nope:1", command: [] } });
    await h.session.assign({ ...seed(), tasks: [WEB1, BOX, nginx, nope] }, true);
    await waitFor("the pull's progress", () => h.session.reports.some((r) => r.taskId === nginx.id && r.status.state === "preparing" && r.status.message === pulling));
    expect(h.session.lastReports()).toContain(`report ${nope.id} rejected/ image "docker.io/library/nope:1" cannot be pulled: no such tag`);
    expect(h.runtime.isRunning(WEB1.id) && h.runtime.isRunning(BOX.id)).toBe(true); // a pull holds up no other task
    expect(containers.isRunning(nginx.id)).toBe(false);
    containers.setImage("nginx:1.27", { state: "ready" });
    await waitFor("the container running", () => h.session.lastReports().includes(`report ${nginx.id} running/`));
    expect(containers.isRunning(nginx.id) && !h.runtime.isRunning(nginx.id)).toBe(true);
    await h.agent.stop();
  });

  it("drains in order: out of the VIPs first, then stops only once drained and its connections end, then its sandbox goes", async () => {
    const h = harness();
    h.agent.start();
    await h.session.assign(seed(), true);
    const box = `${PREFIX}${BOX.id}`;
    const web1 = `${PREFIX}${WEB1.id}`;

    // 1. told to stop, not yet drained: it keeps running, and no VIP sends it new connections any more
    await h.session.assign({ tasks: [{ ...WEB1, desiredState: "shutdown" }], endpoints: endpointsOf(WEB1, NODE_ADDR, false) });
    expect(h.loadBalancer.backendsOf(box, "10.0.3.2")).toEqual(["10.0.3.5"]);
    expect(h.runtime.isRunning(WEB1.id)).toBe(true);

    // 2. drained, but a connection is still open: still running
    h.sandboxes.connections.set(web1, 1);
    await h.session.assign({ tasks: [{ ...WEB1, desiredState: "shutdown", drained: true }] });
    expect(h.runtime.isRunning(WEB1.id)).toBe(true);

    // 3. the connection ends: stopped (the agent looks again by itself), then its sandbox and all that was made for it go
    h.sandboxes.connections.set(web1, 0);
    await waitFor("WEB1 shut down", () => h.session.lastReports().includes(`report ${WEB1.id} shutdown/`), 5000);
    expect(h.runtime.events.slice(-2)).toEqual([`stop ${WEB1.id}`, `forget ${WEB1.id}`]);
    expect(h.sandboxes.get(web1)).toBeUndefined();
    expect(h.dns.dump(["collabweb"])).not.toContain(web1);
    expect(h.loadBalancer.dump()).not.toContain(web1);
    await h.agent.stop();
  });

  it("a task the view no longer holds (replaced while its node was marked down) drains: it runs while its connections last, then goes with its sandbox", async () => {
    const h = harness();
    h.agent.start();
    await h.session.assign(seed(), true);
    const web1 = `${PREFIX}${WEB1.id}`;
    h.sandboxes.connections.set(web1, 1);

    // the node is back: a full view without WEB1 (orphaned, replaced elsewhere); it is out of every VIP at once
    const back = seed();
    await h.session.assign({ ...back, tasks: [BOX], endpoints: [WEB2, BOX].flatMap((t) => endpointsOf(t)) }, true);
    expect(h.loadBalancer.backendsOf(`${PREFIX}${BOX.id}`, "10.0.3.2")).toEqual(["10.0.3.5"]);
    expect(h.runtime.isRunning(WEB1.id)).toBe(true);
    expect(h.sandboxes.get(web1)).toBeDefined();

    h.sandboxes.connections.set(web1, 0);
    await waitFor("WEB1 stopped", () => !h.runtime.isRunning(WEB1.id), 5000);
    await waitFor("WEB1's sandbox removed", () => h.sandboxes.get(web1) === undefined, 5000);
    await h.agent.stop();
  });

  it("refuses to touch anything before the first full assignment", async () => {
    const runtime = new FakeRuntime();
    runtime.leftBehind = [{ spec: { taskId: WEB1.id, serviceName: "collabweb", sandbox: `${PREFIX}${WEB1.id}`, hostname: "x", command: ["x"], env: [] }, running: true }];
    const h = harness({ runtime });
    h.agent.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(runtime.events).toEqual([]);
    expect(h.overlay.syncs).toBe(0);
    await h.agent.stop();
  });

  it("told that the node was removed, stops every task and removes everything it set up, then stays idle", async () => {
    const h = harness();
    h.agent.start();
    await h.session.assign(meshSeed(), true);
    expect(h.mesh.dump()).toContain("mesh tcp/8080");
    const why = nodeRemoved(NODE).message;
    h.session.remove(why);
    await waitFor("the agent idle", () => h.logs.some((l) => l.startsWith("removed from the cluster:")), 5000);
    expect(h.logs.some((l) => l.startsWith(`${why}. Stopping every task`))).toBe(true);
    for (const id of [WEB1.id, BOX.id]) expect(h.runtime.events).toEqual(expect.arrayContaining([`stop ${id}`, `forget ${id}`]));
    // no task, sandbox (the ingress sandbox too), overlay, VIP, name or published port left
    await expect(h.dump()).toMatchFileSnapshot("testdata/agent/removed.golden");
    await h.agent.stop();
  });
});
