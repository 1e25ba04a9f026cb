import { describe, expect, it } from "vitest";
import { addrOf, formatIpv4, parseIpv4 } from "./ipv4.ts";

describe("parseIpv4", () => {
  it.each([
    ["0.0.0.0", 0],
    ["10.0.3.2", 0x0a000302],
    ["255.255.255.255", 0xffffffff],
    ["192.168.100.1", 0xc0a86401],
  ])("reads %s", (text, n) => {
    expect(parseIpv4(text)).toBe(n);
    expect(formatIpv4(n)).toBe(text);
  });

  it.each(["", "10", "10.0.3", "10.0.3.2.1", "10.0.3.", ".10.0.3", "10..3.2", "256.0.0.1", "10.0.3.2560", "01.0.0.1", "10.00.3.2", "10.0.3.2/24", " 10.0.3.2", "10.0.3.x", "1e1.0.0.1", "-1.0.0.1"])(
    "refuses %j",
    (text) => expect(parseIpv4(text)).toBeUndefined(),
  );
});

describe("addrOf", () => {
  it("takes the address of a CIDR address, and an address as it is", () => {
    expect(addrOf("10.0.3.2/24")).toBe("10.0.3.2");
    expect(addrOf("10.0.3.2")).toBe("10.0.3.2");
    expect(addrOf("")).toBe("");
  });
});
