import { describe, expect, it } from "vitest";
import { expectVipmeshError } from "../test/expect-error.ts";
import {
  DEFAULT_RESERVED_PORTS,
  DYNAMIC_PORT_RANGE,
  PublishedPortAllocator,
  parseReservedPorts,
  publishedPortConflict,
  RangeAllocator,
  VniAllocator,
} from "./allocators.ts";
import type { PortConfig, Service } from "./types.ts";

const nextN = (a: RangeAllocator, n: number): number[] => Array.from({ length: n }, () => a.next());

describe("VniAllocator", () => {
  it("starts at 4096 and hands out serially", () => {
    const vnis = new VniAllocator();
    expect(nextN(vnis, 3)).toEqual([4096, 4097, 4098]);
  });

  it("skips taken VNIs and knows which are in use", () => {
    const vnis = new VniAllocator();
    vnis.take(4097);
    expect(vnis.has(4097)).toBe(true);
    expect(vnis.has(4096)).toBe(false);
    expect(nextN(vnis, 2)).toEqual([4096, 4098]);
  });

  it("does not hand out a released VNI again right away", () => {
    const vnis = new VniAllocator();
    expect(nextN(vnis, 2)).toEqual([4096, 4097]);
    vnis.release(4096);
    expect(vnis.has(4096)).toBe(false);
    expect(vnis.next()).toBe(4098);
  });

  it("refuses to take a VNI in use", () => {
    const vnis = new VniAllocator();
    const v = vnis.next();
    expectVipmeshError(() => vnis.take(v), "failed_precondition", String(v), "VNI");
  });
});

describe("RangeAllocator", () => {
  it("is exhausted after every number of a tiny range was handed out", () => {
    const r = new RangeAllocator(1, 3, "widget");
    expect(nextN(r, 3)).toEqual([1, 2, 3]);
    expectVipmeshError(() => r.next(), "resource_exhausted", "widget", "1-3");
  });

  it("wraps around to a released number once the range was used up", () => {
    const r = new RangeAllocator(1, 3, "widget");
    nextN(r, 3);
    r.release(2);
    expect(r.next()).toBe(2);
    expectVipmeshError(() => r.next(), "resource_exhausted");
  });

  it("refuses to take a number outside its range", () => {
    const r = new RangeAllocator(1, 3, "widget");
    expectVipmeshError(() => r.take(4), "invalid_argument", "widget 4", "1-3");
    expectVipmeshError(() => r.take(0), "invalid_argument", "widget 0");
  });

  it("counts taken numbers towards exhaustion", () => {
    const r = new RangeAllocator(1, 3, "widget");
    r.take(2);
    expect(nextN(r, 2)).toEqual([1, 3]);
    expectVipmeshError(() => r.next(), "resource_exhausted");
  });
});

describe("PublishedPortAllocator", () => {
  const { min, max } = DYNAMIC_PORT_RANGE;

  it("takes an explicit port and records its owner", () => {
    const ports = new PublishedPortAllocator();
    expect(ports.allocate("tcp", 8080, "web")).toBe(8080);
    expect(ports.ownerOf("tcp", 8080)).toBe("web");
    expect(ports.ownerOf("udp", 8080)).toBeUndefined();
  });

  it("assigns automatic ports from 30000-32767", () => {
    expect([min, max]).toEqual([30000, 32767]);
    const ports = new PublishedPortAllocator();
    const a = ports.allocate("tcp", 0, "web");
    const b = ports.allocate("tcp", 0, "api");
    expect([a, b]).toEqual([30000, 30001]);
    expect(ports.ownerOf("tcp", a)).toBe("web");
    expect(ports.ownerOf("tcp", b)).toBe("api");
  });

  it("never gives an automatic port that was taken explicitly", () => {
    const ports = new PublishedPortAllocator();
    ports.allocate("tcp", 30000, "x");
    ports.allocate("tcp", 30002, "x");
    expect([ports.allocate("tcp", 0, "y"), ports.allocate("tcp", 0, "y")]).toEqual([30001, 30003]);
  });

  it("fills the whole dynamic range around explicit ports without a collision, then is exhausted", () => {
    const ports = new PublishedPortAllocator();
    const explicit = [30005, 31000, 32767];
    for (const p of explicit) ports.allocate("tcp", p, "pinned");
    const auto = new Set<number>();
    for (let i = 0; i < max - min + 1 - explicit.length; i++) auto.add(ports.allocate("tcp", 0, "auto"));
    expect(auto.size).toBe(max - min + 1 - explicit.length);
    for (const p of explicit) {
      expect(auto.has(p)).toBe(false);
      expect(ports.ownerOf("tcp", p)).toBe("pinned");
    }
    expectVipmeshError(() => ports.allocate("tcp", 0, "auto"), "resource_exhausted", "tcp published port");
    // another protocol has its own range
    expect(ports.allocate("udp", 0, "auto")).toBe(30000);
  });

  it("rejects a port published by another service, naming that service", () => {
    const ports = new PublishedPortAllocator();
    ports.allocate("tcp", 8080, "web");
    expectVipmeshError(() => ports.allocate("tcp", 8080, "api"), "failed_precondition", "8080/tcp", "service web");
    expect(ports.ownerOf("tcp", 8080)).toBe("web");
  });

  it("rejects an explicit port that was given out automatically to another service", () => {
    const ports = new PublishedPortAllocator();
    const auto = ports.allocate("tcp", 0, "web");
    expectVipmeshError(() => ports.allocate("tcp", auto, "api"), "failed_precondition", `${auto}/tcp`, "web");
  });

  it("lets the owner allocate its own port again", () => {
    const ports = new PublishedPortAllocator();
    ports.allocate("tcp", 8080, "web");
    expect(ports.allocate("tcp", 8080, "web")).toBe(8080);
    const auto = ports.allocate("tcp", 0, "web");
    expect(ports.allocate("tcp", auto, "web")).toBe(auto);
    expect(ports.allocate("tcp", 0, "api")).toBe(auto + 1);
  });

  it("keeps tcp and udp apart: the same number can have different owners", () => {
    const ports = new PublishedPortAllocator();
    ports.allocate("tcp", 53, "web");
    expect(ports.allocate("udp", 53, "dns")).toBe(53);
    expect(ports.ownerOf("tcp", 53)).toBe("web");
    expect(ports.ownerOf("udp", 53)).toBe("dns");
  });

  it("frees a released port for another owner", () => {
    const ports = new PublishedPortAllocator();
    ports.allocate("tcp", 8080, "web");
    ports.release("tcp", 8080);
    expect(ports.ownerOf("tcp", 8080)).toBeUndefined();
    expect(ports.allocate("tcp", 8080, "api")).toBe(8080);
  });

  it("frees a released automatic port for an explicit request", () => {
    const ports = new PublishedPortAllocator();
    const auto = ports.allocate("tcp", 0, "web");
    ports.release("tcp", auto);
    expect(ports.allocate("tcp", auto, "api")).toBe(auto);
    // and the automatic range does not hand it out while api holds it
    expect(ports.allocate("tcp", 0, "web")).toBe(auto + 1);
  });

  it.each([70000, 65536, -1, 80.5])("rejects the explicit port %d", (port) => {
    const ports = new PublishedPortAllocator();
    expectVipmeshError(() => ports.allocate("tcp", port, "web"), "invalid_argument", String(port), "1-65535");
    expect(ports.ownerOf("tcp", port)).toBeUndefined();
  });
});

describe("PublishedPortAllocator: busy ports", () => {
  it("skips what busy holds for an automatic port, and leaves it free for later", () => {
    const ports = new PublishedPortAllocator();
    const busy = (p: number) => p === 30000 || p === 30001;
    expect(ports.allocate("tcp", 0, "web", busy)).toBe(30002);
    expect(ports.ownerOf("tcp", 30000)).toBeUndefined();
    expect(ports.allocate("tcp", 30000, "api")).toBe(30000);
  });

  it("runs out when every dynamic port is busy", () => {
    const ports = new PublishedPortAllocator();
    expectVipmeshError(() => ports.allocate("udp", 0, "web", () => true), "resource_exhausted", "30000-32767");
    expect(ports.allocate("udp", 0, "web")).toBeGreaterThanOrEqual(30000);
  });
});

describe("parseReservedPorts", () => {
  it("reads ports for every protocol, or for one", () => {
    expect(parseReservedPorts("22, 2376/tcp,53/udp,")).toEqual([
      { port: 22, what: expect.stringContaining("--reserved-ports") },
      { port: 2376, protocol: "tcp", what: expect.stringContaining("--reserved-ports") },
      { port: 53, protocol: "udp", what: expect.stringContaining("--reserved-ports") },
    ]);
    expect(parseReservedPorts(DEFAULT_RESERVED_PORTS).map((r) => r.port)).toEqual([22]);
    expect(parseReservedPorts("")).toEqual([]);
  });

  it.each(["0", "65536", "22/icmp", "ssh", "22-25"])("refuses %s", (entry) => {
    expectVipmeshError(() => parseReservedPorts(`22,${entry}`), "invalid_argument", "--reserved-ports", `"${entry}"`, "22,2376/tcp");
  });
});

describe("publishedPortConflict", () => {
  const service = (name: string, ports: Partial<PortConfig>[]): Service =>
    ({
      spec: { annotations: { name, labels: {} } },
      endpoint: { ports: ports.map((p) => ({ protocol: "tcp", targetPort: 80, publishedPort: 0, publishMode: "ingress", ...p })) },
    }) as unknown as Service;
  const services = [service("mesh", [{ publishedPort: 8082 }]), service("edge", [{ publishedPort: 9090, publishMode: "host" }])];
  const reserved = [...parseReservedPorts("22,2376/tcp"), { port: 4242, protocol: "tcp" as const, what: "the manager's API port" }];
  const port = (publishedPort: number, publishMode: PortConfig["publishMode"] = "ingress", protocol: PortConfig["protocol"] = "tcp"): PortConfig => ({
    protocol,
    targetPort: 80,
    publishedPort,
    publishMode,
  });
  const conflict = (p: PortConfig, owner = "web") => publishedPortConflict(owner, p, services, reserved);

  it.each([
    { what: "a free mesh port", p: port(8080) },
    { what: "a free host-mode port", p: port(8080, "host") },
    { what: "another's host-mode port in host mode (placement keeps them apart)", p: port(9090, "host") },
    { what: "another's mesh port on another protocol", p: port(8082, "host", "udp") },
    { what: "a port reserved for tcp, on udp", p: port(2376, "ingress", "udp") },
    { what: "53 (the mesh skips loopback)", p: port(53, "ingress", "udp") },
  ])("allows $what", ({ p }) => {
    expect(conflict(p)).toBeUndefined();
  });

  it("lets a service keep its own ports in either mode", () => {
    expect(conflict(port(8082, "host"), "mesh")).toBeUndefined();
    expect(conflict(port(9090), "edge")).toBeUndefined();
  });

  it.each([
    { what: "22 through the mesh", p: port(22), mentions: ["22/tcp", "--reserved-ports"] },
    { what: "22/udp (a bare reserved port is every protocol's)", p: port(22, "ingress", "udp"), mentions: ["22/udp", "--reserved-ports"] },
    { what: "22 in host mode", p: port(22, "host"), mentions: ["22/tcp", "--reserved-ports"] },
    { what: "2376/tcp", p: port(2376), mentions: ["2376/tcp"] },
    { what: "the manager's port", p: port(4242), mentions: ["4242/tcp", "the manager's API port"] },
    { what: "another's mesh port in host mode", p: port(8082, "host"), mentions: ["8082/tcp", "routing mesh by service mesh", "another port"] },
    { what: "another's host-mode port through the mesh", p: port(9090), mentions: ["9090/tcp", "host mode by service edge", "in host mode too"] },
  ])("refuses $what", ({ p, mentions }) => {
    const why = conflict(p);
    for (const m of mentions) expect(why).toContain(m);
  });
});
