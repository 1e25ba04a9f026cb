import { effectiveCapabilities } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { capabilityMask } from "./confine.ts";

describe("capabilityMask", () => {
  it("is the CapEff a Docker container shows for Docker's default set", () => {
    expect(capabilityMask(effectiveCapabilities())).toBe("a80425fb");
  });

  it("has a bit per capability, by its number in the kernel's list", () => {
    expect(capabilityMask(["CAP_NET_ADMIN"])).toBe("1000");
    expect(capabilityMask(["CAP_CHECKPOINT_RESTORE"])).toBe((1n << 40n).toString(16));
    expect(capabilityMask([])).toBe("0");
  });
});
