import { describe, expect, it } from "vitest";
import { expectVipmeshError } from "../test/expect-error.ts";
import { validateAdvertiseAddress } from "./advertise-address.ts";

describe("validateAdvertiseAddress", () => {
  it.each(["192.168.100.11", "10.0.0.1", "192.0.2.0", "172.16.0.1", "223.255.255.254"])("accepts %s", (addr) => {
    expect(validateAdvertiseAddress(addr, false)).toBe(addr);
  });

  it.each([
    ["0.0.0.0", "0.0.0.0/8"],
    ["0.1.2.3", "this network"],
    ["127.0.0.1", "--allow-loopback-nodes"],
    ["127.5.5.5", "127.0.0.0/8 (loopback"],
    ["169.254.1.1", "link-local"],
    ["224.0.0.1", "224.0.0.0/4 (multicast"],
    ["239.255.255.250", "multicast"],
    ["240.0.0.1", "240.0.0.0/4 (reserved"],
    ["255.255.255.255", "broadcast"],
  ])("refuses %s as %s, saying what to give instead", (addr, what) => {
    expectVipmeshError(() => validateAdvertiseAddress(addr, false), "invalid_argument", addr, what, "--advertise-addr", "unicast");
  });

  it("takes loopback only when allowed, and nothing else besides", () => {
    expect(validateAdvertiseAddress("127.0.0.1", true)).toBe("127.0.0.1");
    expectVipmeshError(() => validateAdvertiseAddress("0.0.0.0", true), "invalid_argument", "this network");
    expectVipmeshError(() => validateAdvertiseAddress("224.0.0.1", true), "invalid_argument", "multicast");
  });

  it.each(["", "10.0.0", "10.0.0.256", "::1", "node1"])("refuses %j as no IPv4 address", (addr) => {
    expectVipmeshError(() => validateAdvertiseAddress(addr, true), "invalid_argument", `"${addr}" is not an IPv4 address`);
  });
});
