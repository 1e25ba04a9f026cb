import { describe, expect, it } from "vitest";
import { sourceAddressOf } from "./authz.ts";

describe("sourceAddressOf", () => {
  it.each([
    ["192.168.100.11:40312", "192.168.100.11"],
    ["::ffff:192.168.100.11:40312", "192.168.100.11"],
    ["2001:db8::1:40312", "2001:db8::1"],
    ["unknown", ""], // a unix socket: the join limit's key is the token alone
  ])("%s → %j", (peer, source) => {
    expect(sourceAddressOf({ getPeer: () => peer })).toBe(source);
  });
});
