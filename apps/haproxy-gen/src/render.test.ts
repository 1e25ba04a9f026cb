import type { wire } from "@vipmesh/api";
import { readFileSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { type ClusterSnapshot, templateData } from "./model.ts";
import { runtimeCommands } from "./haproxy.ts";
import { compileTemplate, loadTemplate, TemplateError } from "./render.ts";

const update = process.env.UPDATE_GOLDEN === "1";
const runtime = { statsSocket: "/run/haproxy/admin.sock", statsPort: 8404, tlsCert: "" };

const node = (n: number, state = "ready", availability = "active", labels: Record<string, string> = {}): wire.Node =>
  ({
    id: `node${n}-id`,
    version: 1,
    description: { hostname: `node${n}`, dataplane: "nftables" },
    spec: { labels, availability },
    status: { state, message: "", addr: `192.168.100.1${n}`, ingressAddr: `10.255.0.${n + 1}/16` },
  }) as unknown as wire.Node;

type Port = { protocol?: string; targetPort: number; publishedPort: number; publishMode?: string };

const service = (name: string, ports: Port[], labels: Record<string, string> = {}, lb: { lbScheduler?: string; lbAffinity?: string } = {}): wire.Service =>
  ({
    id: `${name}-id`,
    version: 1,
    spec: { annotations: { name, labels }, endpointSpec: { mode: "vip", ports: [], lbScheduler: lb.lbScheduler ?? "", lbAffinity: lb.lbAffinity ?? "none" } },
    endpoint: { ports: ports.map((p) => ({ protocol: "tcp", publishMode: "ingress", ...p })), virtualIps: [] },
  }) as unknown as wire.Service;

const task = (service: string, n: number, state = "running"): wire.Task =>
  ({ id: `${service}-t${n}`, serviceId: `${service}-id`, nodeId: `node${n}-id`, desiredState: "running", status: { state } }) as unknown as wire.Task;

const three = [node(1), node(2), node(3)];

const snapshots: Record<string, ClusterSnapshot> = {
  none: { version: 1, nodes: three, services: [], tasks: [] },
  "one-service": { version: 7, nodes: three, services: [service("collabweb", [{ targetPort: 80, publishedPort: 8080 }])], tasks: [task("collabweb", 1), task("collabweb", 2)] },
  "many-services": {
    version: 42,
    nodes: three,
    services: [
      service("db", [{ targetPort: 5432, publishedPort: 30001 }], {}, { lbAffinity: "client-ip" }),
      service("dns", [{ protocol: "udp", targetPort: 53, publishedPort: 5353 }]),
      service("edge", [{ targetPort: 80, publishedPort: 9090, publishMode: "host" }], {}, { lbScheduler: "random" }),
      service("api", [{ targetPort: 80, publishedPort: 30002 }], { "vipmesh.haproxy.mode": "http", "vipmesh.haproxy.host": "example.com", "vipmesh.haproxy.path": "/api" }),
      service("www", [{ targetPort: 80, publishedPort: 30003 }, { targetPort: 443, publishedPort: 30004 }], { "vipmesh.haproxy.mode": "http", "vipmesh.haproxy.host": "example.com" }),
      service("fallback", [{ targetPort: 80, publishedPort: 30005 }], { "vipmesh.haproxy.mode": "http", "vipmesh.haproxy.balance": "leastconn" }),
      service("hidden", [{ targetPort: 80, publishedPort: 30006 }], { "vipmesh.haproxy.enable": "false" }),
    ],
    tasks: [task("edge", 1), task("edge", 3), task("edge", 2, "starting"), task("www", 1)],
  },
  "nodes-down": {
    version: 9,
    nodes: [node(1), node(2, "down"), node(3, "ready", "drain"), node(4, "ready", "active", { "vipmesh.haproxy.weight": "3" }), node(5), node(6)],
    services: [service("collabweb", [{ targetPort: 80, publishedPort: 8080 }]), service("edge", [{ targetPort: 80, publishedPort: 9090, publishMode: "host" }])],
    tasks: [task("edge", 1), task("edge", 2), task("edge", 3)],
  },
};

describe("the default template, golden files (UPDATE_GOLDEN=1 rewrites them)", () => {
  const render = loadTemplate();
  const cases = { ...Object.fromEntries(Object.entries(snapshots).map(([k, v]) => [k, [v, runtime] as const])), https: [snapshots["many-services"]!, { ...runtime, tlsCert: "/etc/haproxy/site.pem" }] as const };
  for (const [name, [snapshot, settings]] of Object.entries(cases)) {
    it(name, () => {
      const file = new URL(`./testdata/${name}.cfg`, import.meta.url);
      const got = render(templateData(snapshot, settings));
      if (update) writeFileSync(file, got);
      expect(got).toBe(readFileSync(file, "utf8"));
    });
  }
});

describe("templateData", () => {
  it("serves a mesh port from every ready, active node and a host-mode port from the ready nodes running a task", () => {
    const d = templateData(snapshots["nodes-down"]!, runtime);
    const enabled = (name: string) => d.backends.find((b) => b.name === name)!.servers.filter((s) => s.enabled).map((s) => s.node);
    expect(enabled("be_collabweb_8080")).toEqual(["node1", "node4", "node5", "node6"]);
    expect(enabled("be_edge_9090")).toEqual(["node1"]);
    expect(d.backends[0]!.servers.map((s) => s.weight)).toEqual([1, 3, 1, 1]);
  });

  it("keeps spare disabled slots up to a power of two, at least 4", () => {
    const d = templateData(snapshots["nodes-down"]!, runtime);
    expect(d.backends.map((b) => b.servers.length)).toEqual([4, 4]);
    const five = templateData({ ...snapshots["one-service"]!, nodes: [1, 2, 3, 4, 5].map((n) => node(n)) }, runtime);
    expect(five.backends[0]!.servers.map((s) => s.enabled)).toEqual([true, true, true, true, true, false, false, false]);
  });

  it("routes HTTP-mode services on a shared port, most specific first; UDP is listed, not proxied", () => {
    const d = templateData(snapshots["many-services"]!, runtime);
    expect(d.http.map((f) => [f.port, f.routes.map((r) => r.backend)])).toEqual([[80, ["be_api_30002", "be_www_30003", "be_fallback_30005"]]]);
    expect(d.tcp.map((f) => f.port)).toEqual([9090, 30001, 30004]);
    expect(d.udp).toEqual([{ service: "dns", port: 5353, publishMode: "ingress" }]);
    expect(d.backends.find((b) => b.service === "db")!.balance).toBe("source");
  });
});

describe("what cannot be rendered safely is left out and said", () => {
  it("a label that is not a plain value (it would inject configuration)", () => {
    const evil = [
      service("a", [{ targetPort: 80, publishedPort: 30010 }], { "vipmesh.haproxy.mode": "http", "vipmesh.haproxy.host": "a.example }\n\nprogram pwn\n  command /bin/sh" }),
      service("b", [{ targetPort: 80, publishedPort: 30011 }], { "vipmesh.haproxy.mode": "http", "vipmesh.haproxy.host": "x } || { always_true" }),
      service("c", [{ targetPort: 80, publishedPort: 30012 }], { "vipmesh.haproxy.mode": "http", "vipmesh.haproxy.path": "/ } || { always_true" }),
      service("d", [{ targetPort: 80, publishedPort: 30013 }], { "vipmesh.haproxy.balance": "roundrobin\n  server x 1.2.3.4:1" }),
      service("e", [{ targetPort: 80, publishedPort: 30014 }], { "vipmesh.haproxy.mode": "http", "vipmesh.haproxy.port": "eighty" }),
      service("ok", [{ targetPort: 80, publishedPort: 30015 }], { "vipmesh.haproxy.mode": "http", "vipmesh.haproxy.host": "ok.example:8080", "vipmesh.haproxy.path": "/api/v1" }),
    ];
    const d = templateData({ version: 1, nodes: three, services: evil, tasks: [] }, runtime);
    expect(d.backends.map((b) => b.service)).toEqual(["ok"]);
    expect(d.warnings).toHaveLength(5);
    const text = loadTemplate()(d);
    expect(text).not.toMatch(/^\s*(program|command|server x)/m);
    expect(text).not.toContain("always_true }");
  });

  it("a port another frontend has: the first service by name keeps it", () => {
    const services = [
      service("one", [{ targetPort: 80, publishedPort: 9000, publishMode: "host" }]),
      service("two", [{ targetPort: 80, publishedPort: 9000, publishMode: "host" }]),
      service("plain80", [{ targetPort: 80, publishedPort: 80 }]),
      service("site", [{ targetPort: 80, publishedPort: 30020 }], { "vipmesh.haproxy.mode": "http" }),
      service("stats", [{ targetPort: 80, publishedPort: 8404 }]),
    ];
    const d = templateData({ version: 1, nodes: three, services, tasks: [task("one", 1), task("two", 2)] }, runtime);
    expect(d.tcp.map((f) => `${f.port} ${f.backend}`)).toEqual(["80 be_plain80_80", "9000 be_one_9000"]);
    expect(d.http).toEqual([]);
    expect(d.warnings).toHaveLength(3);
    expect(d.warnings.join("\n")).toMatch(/site.*port 80 is taken by service plain80/);
    expect(d.warnings.join("\n")).toMatch(/stats.*port 8404 is taken by the stats page/);
    expect(d.warnings.join("\n")).toMatch(/two.*port 9000 is taken by service one/);
  });
});

describe("server slots", () => {
  it("keep every node on its slot from one render to the next: a node leaving changes its slot only", () => {
    const before = templateData(snapshots["one-service"]!, runtime);
    const withoutNode1 = templateData({ ...snapshots["one-service"]!, nodes: [node(1, "down"), node(2), node(3)] }, runtime, before);
    expect(runtimeCommands(before, withoutNode1)).toEqual(["set server be_collabweb_8080/s1 state maint"]);
    const back = templateData({ ...snapshots["one-service"]!, nodes: [node(4), node(2), node(3)] }, runtime, withoutNode1);
    expect(back.backends[0]!.servers.map((s) => s.node)).toEqual(["node4", "node2", "node3", ""]);
  });

  it("list a host-mode port only on nodes whose task is ready (healthy, when it has a check)", () => {
    const checked = { ...task("edge", 2), spec: { container: { healthcheck: { test: ["true"] } } }, status: { state: "running", health: "starting" } } as unknown as wire.Task;
    const d = templateData({ ...snapshots["many-services"]!, tasks: [task("edge", 1), checked] }, runtime);
    expect(d.backends.find((b) => b.service === "edge")!.servers.filter((s) => s.enabled).map((s) => s.node)).toEqual(["node1"]);
  });
});

describe("templates", () => {
  it("refuse to compile or render with an error naming the template", () => {
    expect(() => compileTemplate("{{#each tcp}}", "broken.hbs")).toThrow(TemplateError);
    expect(() => compileTemplate("{{runtime.statsSockt}}", "typo.hbs")(templateData(snapshots.none!, runtime))).toThrow(/typo\.hbs.*statsSockt/);
  });
});
