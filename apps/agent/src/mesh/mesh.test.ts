import { emptyView, ingressSandboxKey, type NetworkView, type PortConfig, type Task } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { GATEWAY_IFNAME } from "../sandbox/types.ts";
import { GatewayAddresses } from "./gateways.ts";
import { hostPublishedFor, ingressPlanFor, taskIngressFilter } from "./plan.ts";
import { renderIngressSandbox, renderPublishedPorts, renderTaskIngressFilter } from "./render.ts";

const port = (publishedPort: number, targetPort: number, protocol: PortConfig["protocol"] = "tcp", publishMode: PortConfig["publishMode"] = "ingress"): PortConfig => ({
  protocol,
  targetPort,
  publishedPort,
  publishMode,
});

/** Node n1's view: the ingress network, its own ingress sandbox, a published web service and an unpublished db. */
function meshView(): NetworkView {
  const v = emptyView();
  v.networks.set("ing", { id: "ing", name: "ingress", subnet: "10.255.0.0/16", gateway: "10.255.0.1", vni: 4096, encrypted: false, ingress: true });
  v.networks.set("app", { id: "app", name: "app", subnet: "10.0.1.0/24", gateway: "10.0.1.1", vni: 4097, encrypted: false, ingress: false });
  v.endpoints.set(ingressSandboxKey("n1"), {
    key: ingressSandboxKey("n1"),
    taskId: "",
    serviceId: "",
    networkId: "ing",
    addr: "10.255.0.2/16",
    mac: "02:42:0a:ff:00:02",
    nodeId: "n1",
    nodeAddr: "192.168.0.1",
    ready: true,
    weight: 1,
  });
  const vips = (ingress: string, app: string) => [
    { networkId: "app", addr: app },
    { networkId: "ing", addr: ingress },
  ];
  v.services.set("web", { id: "web", name: "web", endpointMode: "vip", ports: [port(8080, 80), port(8081, 80, "udp"), port(9000, 90, "tcp", "host")], virtualIps: vips("10.255.0.5/16", "10.0.1.2/24"), lbScheduler: "" });
  v.services.set("db", { id: "db", name: "db", endpointMode: "vip", ports: [], virtualIps: [{ networkId: "app", addr: "10.0.1.3/24" }], lbScheduler: "" });
  return v;
}

const task = (id: string, o: Partial<Task> = {}): Task => ({
  id,
  version: 1,
  createdAt: "",
  updatedAt: "",
  serviceId: "web",
  serviceName: "web",
  slot: 1,
  nodeId: "n1",
  specVersion: 1,
  spec: { container: { command: ["x"], env: [] }, placement: { constraints: [] }, forceUpdate: 0 },
  desiredState: "running",
  status: { state: "running", timestamp: "", message: "", err: "", health: "" },
  networks: [
    { networkId: "app", addresses: ["10.0.1.9/24"] },
    { networkId: "ing", addresses: ["10.255.0.9/16"] },
  ],
  ...o,
});

describe("ingressPlanFor", () => {
  it("gives the node's ingress sandbox and every mesh-published port to its service's ingress VIP", () => {
    expect(ingressPlanFor(meshView(), "n1")).toEqual({
      networkId: "ing",
      vni: 4096,
      subnet: "10.255.0.0/16",
      addr: "10.255.0.2/16",
      published: [
        { protocol: "tcp", port: 8080, to: "10.255.0.5", targetPort: 80, service: "web" },
        { protocol: "udp", port: 8081, to: "10.255.0.5", targetPort: 80, service: "web" },
      ],
    });
  });

  it("is nothing for a node without its own ingress sandbox", () => {
    expect(ingressPlanFor(meshView(), "n2")).toBeUndefined();
    expect(ingressPlanFor(emptyView(), "n1")).toBeUndefined();
  });
});

describe("taskIngressFilter", () => {
  it("names the task's interface on the ingress network and its service's mesh target ports, once each", () => {
    const v = meshView();
    v.services.get("web")!.ports.push(port(8082, 80));
    expect(taskIngressFilter(v, task("t1"))).toEqual({ ifname: "eth1", accept: [{ protocol: "tcp", port: 80 }, { protocol: "udp", port: 80 }], from: ["10.255.0.2"] });
  });

  it("is nothing for a task that is not on the ingress network", () => {
    expect(taskIngressFilter(meshView(), task("t1", { networks: [{ networkId: "app", addresses: ["10.0.1.9/24"] }] }))).toBeUndefined();
  });
});

describe("hostPublishedFor", () => {
  const hostPorts = [port(9000, 90, "tcp", "host")];
  const gateway = (t: Task) => (t.id === "nogw" ? undefined : `169.254.128.${t.id === "t1" ? 2 : 6}/30`);

  it("opens a ready task's host-mode ports to its gateway address; not those of a task not ready, nor twice", () => {
    const tasks = [
      task("t2", { hostPorts }),
      task("t1", { hostPorts }),
      task("sick", { hostPorts: [port(9001, 90, "tcp", "host")], status: { state: "running", timestamp: "", message: "", err: "", health: "unhealthy" } }),
      task("stopping", { hostPorts: [port(9002, 90, "tcp", "host")], desiredState: "shutdown" }),
      task("nogw", { hostPorts: [port(9003, 90, "tcp", "host")] }),
      task("plain"),
    ];
    expect(hostPublishedFor(tasks, gateway)).toEqual([{ protocol: "tcp", port: 9000, to: "169.254.128.2", targetPort: 90, service: "web" }]);
  });
});

describe("mesh tables", () => {
  const published = ingressPlanFor(meshView(), "n1")!.published;

  it("DNATs the node's own addresses, host-mode ports first, and lets only replies in from the sandboxes", () => {
    const host = [{ protocol: "tcp" as const, port: 9000, to: "169.254.128.2", targetPort: 90, service: "web" }];
    expect(renderPublishedPorts(published, host)).toBe(`add table ip vipmesh-mesh
delete table ip vipmesh-mesh
table ip vipmesh-mesh {
  map host_published {
    type inet_proto . inet_service : ipv4_addr . inet_service
    elements = { tcp . 9000 : 169.254.128.2 . 90 }
  }
  map published {
    type inet_proto . inet_service : ipv4_addr . inet_service
    elements = { tcp . 8080 : 10.255.0.5 . 80,
                 udp . 8081 : 10.255.0.5 . 80 }
  }
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    fib daddr type local dnat ip to meta l4proto . th dport map @host_published
    fib daddr type local dnat ip to meta l4proto . th dport map @published
  }
  chain output {
    type nat hook output priority -100; policy accept;
    ip daddr != 127.0.0.0/8 fib daddr type local dnat ip to meta l4proto . th dport map @host_published
    ip daddr != 127.0.0.0/8 fib daddr type local dnat ip to meta l4proto . th dport map @published
  }
  chain from_sandboxes_in {
    type filter hook input priority 0; policy accept;
    iifname "vmingress" ct state != { established, related } drop
    iifname "vmg*" ct state != { established, related } drop
  }
  chain from_sandboxes_forward {
    type filter hook forward priority 0; policy accept;
    iifname "vmingress" ct state != { established, related } drop
    iifname "vmg*" ct state != { established, related } drop
  }
}
`);
    // nothing published: the maps are empty, the filters stay
    expect(renderPublishedPorts([], [])).not.toMatch(/elements/);

  });

  it("masquerades only what leaves the ingress sandbox on the overlay, clamps TCP's MSS, and lets only replies from the overlay to the node", () => {
    const script = renderIngressSandbox("eth0", "gw0");
    expect(script).toContain('oifname "eth0" masquerade');
    expect(script).toContain('iifname "eth0" oifname "gw0" ct state != { established, related } drop');
    expect(script).toContain("tcp option maxseg size set rt mtu");
  });

  it("lets a task's ingress interface take only its target ports, from ingress sandboxes, and replies", () => {
    const script = renderTaskIngressFilter({ ifname: "eth1", accept: [{ protocol: "tcp", port: 80 }], from: ["10.255.0.2", "10.255.0.3"] });
    expect(script.split("\n").filter((l) => /^\s+(iifname|ct|ip|drop|elements)/.test(l)).map((l) => l.trim())).toEqual([
      "elements = { tcp . 80 }",
      "elements = { 10.255.0.2, 10.255.0.3 }",
      'iifname != "eth1" accept',
      "ct state established,related accept",
      "ip saddr @ingress_sandboxes meta l4proto . th dport @published_targets accept",
      "drop",
    ]);
  });
});

describe("GatewayAddresses", () => {
  it("gives each task its own /30, keeps it, reuses it once released, and learns those in the kernel", () => {
    const g = new GatewayAddresses();
    g.seed([{ taskId: "old", name: "sb-old", interfaces: [{ ifname: GATEWAY_IFNAME, vni: 0, addr: "169.254.128.6/30", mac: "" }] }]);
    expect(g.get("old")).toEqual({ hostIfname: "vmgold", hostAddr: "169.254.128.5/30", addr: "169.254.128.6/30" });
    const a = g.for("task-a");
    const b = g.for("task-b");
    expect(g.for("task-a")).toEqual(a);
    expect(new Set([a, b, g.get("old")!].map((x) => x.hostAddr)).size).toBe(3);
    for (const x of [a, b]) expect(x.hostAddr).toMatch(/^169\.254\.(1(2[89]|[3-9]\d)|2[0-5]\d)\.\d+\/30$/);
    g.release("task-a");
    expect(g.get("task-a")).toBeUndefined();
  });
});
