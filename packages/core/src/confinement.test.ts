import { describe, expect, it } from "vitest";
import { canonicalCapability, DEFAULT_CAPABILITIES, DEFAULT_PIDS_LIMIT, effectiveCapabilities, taskConfinement } from "./confinement.ts";

describe("capabilities, as Docker has them", () => {
  it("names a capability however it is written, and knows ALL", () => {
    expect(canonicalCapability("net_admin")).toBe("CAP_NET_ADMIN");
    expect(canonicalCapability("CAP_SYS_PTRACE")).toBe("CAP_SYS_PTRACE");
    expect(canonicalCapability("all")).toBe("ALL");
    expect(canonicalCapability("CAP_FLY")).toBeUndefined();
  });

  it("is Docker's default set when nothing is added or dropped", () => {
    expect(new Set(effectiveCapabilities())).toEqual(new Set(DEFAULT_CAPABILITIES));
    expect(effectiveCapabilities()).not.toContain("CAP_NET_ADMIN");
  });

  it("drops, then adds", () => {
    const caps = effectiveCapabilities(["NET_ADMIN"], ["chown", "NET_RAW"]);
    expect(caps).toContain("CAP_NET_ADMIN");
    expect(caps).not.toContain("CAP_CHOWN");
    expect(caps).not.toContain("CAP_NET_RAW");
    expect(caps).toHaveLength(DEFAULT_CAPABILITIES.length - 1);
  });

  it("starts from nothing with --cap-drop ALL and from everything with --cap-add ALL", () => {
    expect(effectiveCapabilities(["NET_BIND_SERVICE"], ["ALL"])).toEqual(["CAP_NET_BIND_SERVICE"]);
    const all = effectiveCapabilities(["ALL"], ["SYS_ADMIN"]);
    expect(all).toContain("CAP_SYS_MODULE");
    expect(all).not.toContain("CAP_SYS_ADMIN");
  });
});

describe("taskConfinement", () => {
  const spec = { container: { command: ["x"], env: [] }, placement: { constraints: [] }, forceUpdate: 0 };

  it("confines a task with no settings to root, the default capabilities and the default pids limit", () => {
    expect(taskConfinement(spec)).toEqual({ user: "", capabilities: effectiveCapabilities(), pids: DEFAULT_PIDS_LIMIT, memoryBytes: 0, nanoCpus: 0 });
  });

  it("takes the user and limits the spec gives", () => {
    const c = taskConfinement({
      ...spec,
      container: { ...spec.container, user: "1000:1000", capabilityDrop: ["ALL"] },
      resources: { limits: { pids: 64, memoryBytes: 64 << 20, nanoCpus: 500_000_000 } },
    });
    expect(c).toEqual({ user: "1000:1000", capabilities: [], pids: 64, memoryBytes: 64 << 20, nanoCpus: 500_000_000 });
  });
});
