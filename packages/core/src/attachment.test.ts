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
  it("refuses an encrypted network while the node cannot encrypt, naming it and saying why", () => {
    const reason = attachmentRefusal(net(true), "this node has no overlay keys yet");
    expect(reason).toContain("collabnet");
    expect(reason).toContain("no overlay keys yet");
    expect(reason).toContain("plaintext");
  });
  it("accepts an encrypted network on a node that encrypts", () => {
    expect(attachmentRefusal(net(true), undefined)).toBeUndefined();
  });
  it("accepts a plain overlay either way", () => {
    expect(attachmentRefusal(net(false), "no ESP here")).toBeUndefined();
    expect(attachmentRefusal(net(false), undefined)).toBeUndefined();
  });
});
