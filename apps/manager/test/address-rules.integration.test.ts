// Subnets and ports the hosts need stay theirs: each refusal has its status and
// a message naming what clashes, and leaves the store as it was.

import { call, clusterClient, credentialsFromDir } from "@vipmesh/api";
import { tempDir } from "@vipmesh/testing";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startManager } from "../src/index.ts";
import { everything, failure, type Harness, serviceSpec, startHarness, tasksOf, waitFor } from "./harness.ts";

let h: Harness;
beforeEach(async () => {
  h = await startHarness({ addressPool: "10.0.0.0/22" });
});
afterEach(async () => {
  await h.close();
});

const network = (name: string, subnet?: string) => ({ spec: { name, driver: "overlay", ipam: subnet ? [{ subnet }] : [] } });
const published = (name: string, ports: object[], extra: object = {}) =>
  ({ spec: serviceSpec(name, { replicated: { replicas: 0 }, endpointSpec: { ports }, ...extra }) });
const mesh = (publishedPort: number, protocol = "tcp") => ({ targetPort: 80, publishedPort, protocol });
const host = (publishedPort: number, protocol = "tcp") => ({ targetPort: 80, publishedPort, protocol, publishMode: "host" });

async function expectRefused(what: string, p: Promise<unknown>, code: string, ...mentions: string[]): Promise<void> {
  const f = await failure(p);
  expect({ what, code: f.code }).toEqual({ what, code });
  for (const m of mentions) expect(f.details, what).toContain(m);
}

describe("overlay subnets", () => {
  it("refuses special ranges, the ingress subnet, other networks and nodes' addresses, leaving the store as it was", async () => {
    const agent = await h.addAgent("node1", { addr: "172.20.0.5" });
    await call(h.client, "createNetwork", network("appnet", "10.9.0.0/24"));
    const before = await everything(h);
    const create = (subnet: string) => call(h.client, "createNetwork", network("n1", subnet));
    await expectRefused("loopback", create("127.0.0.0/24"), "INVALID_ARGUMENT", "127.0.0.0/8", "loopback");
    await expectRefused("this network", create("0.0.0.0/8"), "INVALID_ARGUMENT", "0.0.0.0/8");
    await expectRefused("multicast", create("224.0.0.0/24"), "INVALID_ARGUMENT", "multicast");
    await expectRefused("link-local", create("169.254.3.0/24"), "INVALID_ARGUMENT", "link-local");
    await expectRefused("class E", create("240.1.0.0/16"), "INVALID_ARGUMENT", "240.0.0.0/4");
    await expectRefused("the ingress subnet", create("10.255.3.0/24"), "FAILED_PRECONDITION", "10.255.0.0/16 of network ingress");
    await expectRefused("another network", create("10.9.0.0/16"), "FAILED_PRECONDITION", "10.9.0.0/24 of network appnet");
    await expectRefused("a node's address", create("172.20.0.0/24"), "FAILED_PRECONDITION", "172.20.0.5", "node node1");
    // a node may not come with an address inside an overlay, re-registering included
    const register = (hostname: string, addr: string) => call(agent.client, "register", { hostname, addr });
    await expectRefused("a new node inside appnet", register("node2", "10.9.0.77"), "FAILED_PRECONDITION", "10.9.0.77", "network appnet", "--advertise-addr");
    await expectRefused("a node moving into ingress", register("node1", "10.255.0.77"), "FAILED_PRECONDITION", "network ingress");
    expect(await everything(h)).toEqual(before);
  });

  it("gives automatic subnets around nodes' addresses", async () => {
    await h.addAgent("node1", { addr: "10.0.1.7" });
    const made = [];
    for (const name of ["a", "b"]) made.push((await call(h.client, "createNetwork", network(name))).network!.ipam?.subnet);
    expect(made).toEqual(["10.0.0.0/24", "10.0.2.0/24"]);
  });
});

describe("published ports", () => {
  it("refuses one port in both modes, reserved ports and the manager's own, leaving the store as it was", async () => {
    await call(h.client, "createService", published("web", [mesh(8082)]));
    await call(h.client, "createService", published("edge", [host(9090)]));
    const before = await everything(h);
    const managerPort = Number(h.address.split(":").pop());
    const create = (ports: object[]) => call(h.client, "createService", published("api", ports));
    await expectRefused("mesh and host in one service", create([mesh(8082), host(8082)]), "INVALID_ARGUMENT", "8082/tcp", "twice");
    await expectRefused("host mode on another's mesh port", create([host(8082)]), "FAILED_PRECONDITION", "8082/tcp", "routing mesh by service web");
    await expectRefused("mesh on another's host-mode port", create([mesh(9090)]), "FAILED_PRECONDITION", "9090/tcp", "host mode by service edge");
    await expectRefused("SSH's port (the default --reserved-ports)", create([mesh(22)]), "FAILED_PRECONDITION", "22/tcp", "--reserved-ports");
    await expectRefused("SSH's port in host mode", create([host(22)]), "FAILED_PRECONDITION", "22/tcp", "--reserved-ports");
    await expectRefused("the manager's port", create([mesh(managerPort)]), "FAILED_PRECONDITION", `${managerPort}/tcp`, "the manager's API port");

    // updates see the merged result, and a refused one leaves the service as it was
    const web = (await call(h.client, "inspectService", { service: "web" })).service!;
    const edge = (await call(h.client, "inspectService", { service: "edge" })).service!;
    const update = (s: typeof web, ports: object[]) =>
      call(h.client, "updateService", { service: s.spec!.annotations!.name, version: s.version, spec: { ...s.spec!, endpointSpec: { ports } } });
    await expectRefused("update: add host mode on its own mesh port", update(web, [mesh(8082), host(8082)]), "INVALID_ARGUMENT", "twice");
    await expectRefused("update: host mode on another's mesh port", update(edge, [host(8082)]), "FAILED_PRECONDITION", "service web");
    await expectRefused("update: mesh on another's host-mode port", update(web, [mesh(8082), mesh(9090)]), "FAILED_PRECONDITION", "service edge");
    await expectRefused("update: SSH's port", update(web, [mesh(22)]), "FAILED_PRECONDITION", "--reserved-ports");
    expect(await everything(h)).toEqual(before);

    // allowed: 53 (the mesh skips loopback), and another's host-mode port in host mode
    await call(h.client, "createService", published("dns", [mesh(53, "udp"), mesh(53)]));
    await call(h.client, "createService", published("edge2", [host(9090)]));
  });

  it("gives automatic ports around host-mode ones", async () => {
    await call(h.client, "createService", published("edge", [host(30000)]));
    const s = (await call(h.client, "createService", published("web", [{ targetPort: 80 }]))).service!;
    expect(s.endpoint!.ports[0]!.publishedPort).toBe(30001);
  });

  it("places tasks publishing one host-mode port on different nodes; one that fits nowhere stays pending and says why", async () => {
    await h.addAgent("node1");
    await h.addAgent("node2");
    await call(h.client, "createService", published("edge", [host(9090)], { replicated: { replicas: 3 } }));
    const tasks = await waitFor("two tasks placed, one pending with the reason", async () => {
      const t = await tasksOf(h, "edge");
      const placed = t.filter((x) => x.status?.state !== "pending");
      const pending = t.find((x) => x.status?.state === "pending" && x.status.err);
      return placed.length === 2 && pending ? { placed, pending } : undefined;
    });
    expect(new Set(tasks.placed.map((t) => t.nodeId)).size).toBe(2);
    expect(tasks.pending.status!.err).toBe("no suitable node (host-mode port 9090/tcp already in use on all 2 nodes the task may run on)");
    // another service's task holds it just the same; it is placed once edge gives the port back
    await call(h.client, "createService", published("edge2", [host(9090)], { replicated: { replicas: 1 } }));
    await waitFor("edge2 pending for the port", async () => (await tasksOf(h, "edge2")).find((t) => t.status?.err?.includes("9090/tcp")));
    const edge = (await call(h.client, "inspectService", { service: "edge" })).service!;
    await call(h.client, "updateService", { service: "edge", version: edge.version, spec: { ...edge.spec!, replicated: { replicas: 1 } } });
    await waitFor("edge2 placed", async () => (await tasksOf(h, "edge2")).find((t) => t.status?.state === "running"));
  });
});

describe("manager options", () => {
  it("--reserved-subnets and --reserved-ports refuse what they name, and nothing else", async () => {
    const dir = tempDir();
    const m = await startManager({ dataDir: dir.path, listen: ["127.0.0.1:0"], reservedSubnets: "10.8.0.0/16,10.0.0.0/24", reservedPorts: "2376/tcp" });
    const client = clusterClient(m.addresses[0]!, credentialsFromDir(m.adminTlsDir!));
    try {
      const before = await call(client, "listNetworks", {});
      await expectRefused("a reserved subnet", call(client, "createNetwork", network("n1", "10.8.4.0/24")), "FAILED_PRECONDITION", "10.8.0.0/16", "--reserved-subnets");
      await expectRefused("a reserved port", call(client, "createService", published("a", [mesh(2376)])), "FAILED_PRECONDITION", "2376/tcp");
      expect(await call(client, "listNetworks", {})).toEqual(before);
      expect((await call(client, "listServices", {})).services).toEqual([]);
      expect((await call(client, "createNetwork", network("auto"))).network!.ipam?.subnet).toBe("10.0.1.0/24");
      // 22 is reserved only by default; 2376 only on tcp
      await call(client, "createService", published("ssh", [mesh(22)]));
      await call(client, "createService", published("udp", [mesh(2376, "udp")]));
    } finally {
      client.close();
      await m.stop();
      dir.remove();
    }
  });

  it("refuses to start with a bad list, or an ingress subnet that is not free", async () => {
    const dir = tempDir();
    const start = (extra: object) => startManager({ dataDir: dir.path, listen: ["127.0.0.1:0"], ...extra });
    try {
      await expect(start({ reservedSubnets: "10.8.0.1/16" })).rejects.toThrow(/--reserved-subnets: "10.8.0.1\/16"/);
      await expect(start({ reservedPorts: "ssh" })).rejects.toThrow(/--reserved-ports: "ssh"/);
      await expect(start({ ingressSubnet: "127.1.0.0/16" })).rejects.toThrow(/loopback/);
      await expect(start({ reservedSubnets: "10.255.7.0/24" })).rejects.toThrow(/10\.255\.0\.0\/16 overlaps 10\.255\.7\.0\/24.*--reserved-subnets/);
    } finally {
      dir.remove();
    }
  });
});
