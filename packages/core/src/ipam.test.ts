import { describe, expect, it } from "vitest";
import { expectVipmeshError } from "../test/expect-error.ts";
import {
  type AddressHolders,
  AddressPool,
  checkNodeAddress,
  checkSubnetFree,
  findOverlap,
  gatewayOf,
  nextFreeSubnet,
  parseReservedSubnets,
  subnetsTaken,
} from "./ipam.ts";
import type { Network, Node } from "./types.ts";

/** A pool with its gateway reserved, as the manager creates one. */
function poolWithGateway(subnet: string): AddressPool {
  const pool = new AddressPool(subnet, "appnet");
  pool.reserve(gatewayOf(subnet));
  return pool;
}

const allocateN = (pool: AddressPool, n: number): string[] => Array.from({ length: n }, () => pool.allocate());

describe("nextFreeSubnet", () => {
  it("gives the first /24 of 10.0.0.0/8 when nothing is taken", () => {
    expect(nextFreeSubnet([])).toBe("10.0.0.0/24");
  });

  it("skips taken subnets", () => {
    expect(nextFreeSubnet(["10.0.0.0/24"])).toBe("10.0.1.0/24");
    expect(nextFreeSubnet(["10.0.0.0/24", "10.0.1.0/24", "10.0.3.0/24"])).toBe("10.0.2.0/24");
  });

  it("skips a taken /16 in one jump", () => {
    expect(nextFreeSubnet(["10.0.0.0/16"])).toBe("10.1.0.0/24");
    expect(nextFreeSubnet(["10.0.0.0/16", "10.1.0.0/24"])).toBe("10.1.1.0/24");
  });

  it("skips a /24 that holds a smaller taken subnet", () => {
    expect(nextFreeSubnet(["10.0.0.64/26"])).toBe("10.0.1.0/24");
  });

  it("ignores taken subnets outside the pool", () => {
    expect(nextFreeSubnet(["192.168.0.0/16"], "10.0.0.0/8")).toBe("10.0.0.0/24");
  });

  it("uses the given pool and size", () => {
    expect(nextFreeSubnet(["172.20.0.0/26"], "172.20.0.0/16", 26)).toBe("172.20.0.64/26");
  });

  it("throws resource_exhausted when the pool is full", () => {
    const pool = "10.9.0.0/23";
    expect(nextFreeSubnet(["10.9.0.0/24"], pool)).toBe("10.9.1.0/24");
    expectVipmeshError(
      () => nextFreeSubnet(["10.9.0.0/24", "10.9.1.0/24"], pool),
      "resource_exhausted",
      "10.9.0.0/23",
      "/24",
    );
    expectVipmeshError(() => nextFreeSubnet(["10.9.0.0/23"], pool), "resource_exhausted", "10.9.0.0/23");
  });

  it("throws resource_exhausted when the pool is smaller than one subnet", () => {
    expectVipmeshError(() => nextFreeSubnet([], "10.9.0.0/25"), "resource_exhausted", "10.9.0.0/25");
  });

  it("rejects a pool that is not a CIDR", () => {
    expectVipmeshError(() => nextFreeSubnet([], "10.0.0.1/8"), "invalid_argument", "10.0.0.1/8");
  });
});

describe("findOverlap", () => {
  it.each([
    { subnet: "10.0.3.0/24", taken: ["10.0.3.0/24"], overlap: "10.0.3.0/24" },
    { subnet: "10.0.3.0/24", taken: ["10.0.1.0/24", "10.0.0.0/16"], overlap: "10.0.0.0/16" },
    { subnet: "10.0.0.0/16", taken: ["10.1.0.0/24", "10.0.200.0/24"], overlap: "10.0.200.0/24" },
    { subnet: "10.0.3.128/25", taken: ["10.0.3.0/24"], overlap: "10.0.3.0/24" },
    { subnet: "10.0.3.0/24", taken: ["10.0.2.0/24", "10.0.4.0/24"], overlap: undefined },
    { subnet: "10.0.3.0/25", taken: ["10.0.3.128/25"], overlap: undefined },
    { subnet: "10.0.3.0/24", taken: [], overlap: undefined },
  ])("$subnet against $taken → $overlap", ({ subnet, taken, overlap }) => {
    expect(findOverlap(subnet, taken)).toBe(overlap);
  });
});

describe("gatewayOf", () => {
  it("is the subnet's first address", () => {
    expect(gatewayOf("10.0.3.0/24")).toBe("10.0.3.1");
    expect(gatewayOf("192.168.7.8/29")).toBe("192.168.7.9");
  });
});

describe("AddressPool", () => {
  it("accepts an explicit subnet and knows its capacity", () => {
    const pool = new AddressPool("10.0.3.0/24", "appnet");
    expect(pool.cidr).toEqual({ base: (10 << 24) + 3 * 256, prefix: 24, size: 256 });
    expect(pool.capacity).toBe(254);
    expect(pool.inUse).toBe(0);
  });

  it("rejects a subnet that is not a network address", () => {
    expectVipmeshError(() => new AddressPool("10.0.3.1/24", "appnet"), "invalid_argument", "10.0.3.1/24");
  });

  it("with the gateway reserved, hands out .2 first, with the prefix", () => {
    const pool = poolWithGateway("10.0.3.0/24");
    expect(pool.has("10.0.3.1")).toBe(true);
    expect(pool.allocate()).toBe("10.0.3.2/24");
    expect(pool.allocate()).toBe("10.0.3.3/24");
  });

  it("without a reservation, starts at the first host address", () => {
    expect(new AddressPool("10.0.3.0/24", "appnet").allocate()).toBe("10.0.3.1/24");
  });

  it("allocates serially: a released address is not handed out again right away", () => {
    const pool = poolWithGateway("10.0.3.0/24");
    expect(allocateN(pool, 3)).toEqual(["10.0.3.2/24", "10.0.3.3/24", "10.0.3.4/24"]);
    pool.release("10.0.3.2/24");
    expect(pool.has("10.0.3.2")).toBe(false);
    expect(pool.allocate()).toBe("10.0.3.5/24");
  });

  it("reuses a released address only after wrapping around", () => {
    const pool = poolWithGateway("10.0.3.0/29"); // .1 gateway, .2-.6 usable, .7 broadcast
    expect(allocateN(pool, 2)).toEqual(["10.0.3.2/29", "10.0.3.3/29"]);
    pool.release("10.0.3.2/29");
    expect(allocateN(pool, 3)).toEqual(["10.0.3.4/29", "10.0.3.5/29", "10.0.3.6/29"]);
    // the cursor wraps: .1 is the gateway, .2 is free again
    expect(pool.allocate()).toBe("10.0.3.2/29");
  });

  it("exhausts a /29 after 5 allocations and recovers after a release", () => {
    const pool = poolWithGateway("10.0.3.0/29");
    expect(pool.capacity).toBe(6);
    expect(allocateN(pool, 5)).toEqual(["10.0.3.2/29", "10.0.3.3/29", "10.0.3.4/29", "10.0.3.5/29", "10.0.3.6/29"]);
    expectVipmeshError(() => pool.allocate(), "resource_exhausted", "appnet", "10.0.3.0/29");
    pool.release("10.0.3.4/29");
    expect(pool.allocate()).toBe("10.0.3.4/29");
    expectVipmeshError(() => pool.allocate(), "resource_exhausted");
    expect(pool.inUse).toBe(6);
  });

  it("refuses to reserve an address in use, naming it and the network", () => {
    const pool = poolWithGateway("10.0.3.0/24");
    expectVipmeshError(() => pool.reserve("10.0.3.1"), "failed_precondition", "10.0.3.1", "appnet");
    const addr = pool.allocate();
    expectVipmeshError(() => pool.reserve(addr), "failed_precondition", addr);
  });

  it("reserves known addresses (rebuilding after a restart) and allocates past them", () => {
    const pool = poolWithGateway("10.0.3.0/24");
    pool.reserve("10.0.3.7/24");
    pool.reserve("10.0.3.3/24");
    expect(pool.inUse).toBe(3);
    expect(pool.allocate()).toBe("10.0.3.8/24");
  });

  it.each([
    ["outside the subnet", "10.0.4.2"],
    ["the network address", "10.0.3.0"],
    ["the broadcast address", "10.0.3.255"],
    ["an address of the subnet with another prefix length", "10.0.3.5/16"],
    ["not an address", "10.0.3"],
  ])("rejects %s (%s)", (_why, addr) => {
    const pool = new AddressPool("10.0.3.0/24", "appnet");
    for (const op of [() => pool.reserve(addr), () => pool.release(addr), () => pool.has(addr)]) {
      expectVipmeshError(op, "invalid_argument", addr, "10.0.3.0/24");
    }
  });

  it("releases and reuses addresses so that the whole subnet stays usable", () => {
    const pool = poolWithGateway("10.0.3.0/29");
    const first = allocateN(pool, 5);
    for (const a of first) pool.release(a);
    expect(pool.inUse).toBe(1);
    const second = allocateN(pool, 5);
    expect(new Set(second)).toEqual(new Set(first));
  });
});

const network = (name: string, subnet: string): Network => ({
  id: `id-${name}`,
  version: 1,
  createdAt: "",
  updatedAt: "",
  spec: { name, driver: "overlay", labels: {}, options: {}, ipam: [], ingress: name === "ingress" },
  ipam: { subnet, gateway: gatewayOf(subnet) },
  vni: 4096,
  encrypted: false,
});

const node = (hostname: string, addr: string): Node => ({
  id: `id-${hostname}`,
  version: 1,
  createdAt: "",
  updatedAt: "",
  spec: { labels: {}, availability: "active" },
  description: { hostname },
  status: { state: "ready", message: "", addr },
});

describe("what an overlay subnet must leave alone", () => {
  const holders: AddressHolders = {
    networks: [network("ingress", "10.255.0.0/16"), network("appnet", "10.0.3.0/24")],
    nodes: [node("node1", "192.168.100.11"), node("node2", "172.20.0.5")],
    managerAddrs: ["172.21.0.1"],
    reservedSubnets: ["192.168.100.0/24", "10.9.0.0/16"],
  };

  it.each(["10.0.2.0/24", "10.0.4.0/24", "192.168.101.0/24", "172.20.1.0/24", "172.21.1.0/24", "10.10.0.0/16"])("accepts %s", (subnet) => {
    expect(() => checkSubnetFree(subnet, holders)).not.toThrow();
  });

  it.each([
    { subnet: "10.255.7.0/24", mentions: ["overlaps 10.255.0.0/16 of network ingress"] },
    { subnet: "10.0.0.0/16", mentions: ["overlaps 10.0.3.0/24 of network appnet"] },
    { subnet: "192.168.100.0/24", mentions: ["overlaps 192.168.100.0/24", "--reserved-subnets"] },
    { subnet: "10.9.128.0/24", mentions: ["overlaps 10.9.0.0/16", "--reserved-subnets"] },
    { subnet: "172.20.0.0/29", mentions: ["holds 172.20.0.5", "node node2"] },
    { subnet: "172.16.0.0/12", mentions: ["holds 172.20.0.5", "node node2"] },
    { subnet: "172.21.0.0/24", mentions: ["holds 172.21.0.1", "the manager"] },
  ])("refuses $subnet", ({ subnet, mentions }) => {
    expectVipmeshError(() => checkSubnetFree(subnet, holders), "failed_precondition", subnet, ...mentions);
  });

  it("makes automatic subnets skip reserved subnets and the hosts' addresses", () => {
    const taken = subnetsTaken({ ...holders, reservedSubnets: ["10.0.0.0/24"], managerAddrs: ["10.0.1.1"], nodes: [node("n", "10.0.2.200")] });
    expect(nextFreeSubnet(taken)).toBe("10.0.4.0/24"); // 10.0.3.0/24 is appnet's
  });
});

describe("checkNodeAddress", () => {
  const networks = [network("ingress", "10.255.0.0/16"), network("appnet", "10.0.3.0/24")];

  it.each(["10.0.2.255", "10.0.4.0", "192.168.100.11", "10.254.255.255"])("accepts %s", (addr) => {
    expect(() => checkNodeAddress(addr, networks)).not.toThrow();
  });

  it.each([
    { addr: "10.0.3.0", network: "appnet" },
    { addr: "10.0.3.255", network: "appnet" },
    { addr: "10.255.0.9", network: "ingress" },
  ])("refuses $addr, inside $network", ({ addr, network }) => {
    expectVipmeshError(() => checkNodeAddress(addr, networks), "failed_precondition", addr, `overlay network ${network}`, "--advertise-addr");
  });
});

describe("parseReservedSubnets", () => {
  it("reads a comma-separated list, spaces and empty entries ignored", () => {
    expect(parseReservedSubnets("192.168.100.0/24, 10.1.0.0/16,,192.0.2.7/32")).toEqual(["192.168.100.0/24", "10.1.0.0/16", "192.0.2.7/32"]);
    expect(parseReservedSubnets("")).toEqual([]);
  });

  it.each(["192.168.100.1/24", "192.168.100.0", "10.0.0.0/33", "nets"])("refuses %s", (entry) => {
    expectVipmeshError(() => parseReservedSubnets(`10.1.0.0/16,${entry}`), "invalid_argument", "--reserved-subnets", `"${entry}"`);
  });
});
