import { describe, expect, it } from "vitest";
import { attachmentRefusal, type ViewNetwork } from "./network-view.ts";

const net = (encrypted: boolean): ViewNetwork => ({
  id: "n1",
  name: "collabnet",
  subnet: "10.0.3.0/24",
  gateway: "10.0.3.1",
  vni: 4096,
  encrypted,
  ingress: false,
});

describe("attachmentRefusal", () => {
  it("refuses an encrypted network, naming it and saying why", () => {
    const reason = attachmentRefusal(net(true));
    expect(reason).toContain("collabnet");
    expect(reason).toContain("plaintext");
  });
  it("accepts a plain overlay", () => {
    expect(attachmentRefusal(net(false))).toBeUndefined();
  });
});
