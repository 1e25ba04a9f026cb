import { effectiveCapabilities } from "@vipmesh/core";
import { describe, expect, it } from "vitest";
import { capabilityMask, HIDDEN_PATHS, runArgs } from "./confine.ts";

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

describe("runArgs", () => {
  const confinement = { user: "", capabilities: effectiveCapabilities(), pids: 4096, memoryBytes: 0, nanoCpus: 0 };
  const args = runArgs({ confinement, sandbox: "vm-t1", cgroups: ["/sys/fs/cgroup/pids/vm/t1"], hostname: "t1", home: "/state/tasks/t1/root", hide: ["/state", "/opt/manager"], log: "/state/tasks/t1/log", logMaxBytes: 1024, command: ["sleep", "1"] });
  const values = (flag: string) => args.flatMap((a, i) => (a === flag ? [args[i + 1]] : []));

  it("hides every path no task may see, and the ones the agent is told to", () => {
    expect(values("--hide")).toEqual([...HIDDEN_PATHS, "/state", "/opt/manager"]);
  });

  it("joins the task's cgroups, keeps Docker's capabilities and runs the command after --", () => {
    expect(values("--cgroup")).toEqual(["/sys/fs/cgroup/pids/vm/t1"]);
    expect(values("--caps")).toEqual(["a80425fb"]);
    expect(values("--netns")).toEqual(["vm-t1"]);
    expect(args.slice(args.indexOf("--") + 1)).toEqual(["sleep", "1"]);
  });

  it("has the outer write the task's log, capped", () => {
    expect(values("--log")).toEqual(["/state/tasks/t1/log"]);
    expect(values("--log-max-bytes")).toEqual(["1024"]);
  });
});
