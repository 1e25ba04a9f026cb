import { describe, expect, it } from "vitest";
import { containerCgroup, hierarchies, settings } from "./cgroups.ts";

// a hybrid host, as these machines are: v1 controllers, an empty v2 at /sys/fs/cgroup/unified
const MOUNTINFO = `\
30 25 0:26 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw
31 25 0:27 / /sys/fs/cgroup/pids rw,relatime shared:10 - cgroup cgroup rw,pids
32 25 0:28 / /sys/fs/cgroup/memory rw,relatime shared:11 - cgroup cgroup rw,memory
33 25 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
34 25 0:30 / /sys/fs/cgroup/devices rw,relatime shared:13 - cgroup cgroup rw,devices
35 25 0:31 / /sys/fs/cgroup/systemd rw,relatime shared:14 - cgroup cgroup rw,xattr,name=systemd
`;
const OWN = `\
9:name=systemd:/system.slice/vipmesh-agent.service
8:pids:/system.slice/vipmesh-agent.service
4:memory:/system.slice/vipmesh-agent.service
3:cpu,cpuacct:/system.slice/vipmesh-agent.service
2:devices:/system.slice/vipmesh-agent.service
0::/
`;

describe("task cgroups", () => {
  it("finds the agent's own cgroup in each v1 controller it uses, when v2 has no controllers", () => {
    expect(hierarchies(MOUNTINFO, OWN, () => "")).toEqual([
      { dir: "/sys/fs/cgroup/pids/system.slice/vipmesh-agent.service", controllers: ["pids"] },
      { dir: "/sys/fs/cgroup/memory/system.slice/vipmesh-agent.service", controllers: ["memory"] },
      { dir: "/sys/fs/cgroup/cpu,cpuacct/system.slice/vipmesh-agent.service", controllers: ["cpu"] },
      { dir: "/sys/fs/cgroup/devices/system.slice/vipmesh-agent.service", controllers: ["devices"] },
    ]);
  });

  it("uses v2 alone where its hierarchy has the pids controller", () => {
    const own = "0::/system.slice/vipmesh-agent.service\n";
    expect(hierarchies(MOUNTINFO, own, () => "cpuset cpu io memory pids\n")).toEqual([
      { dir: "/sys/fs/cgroup/unified/system.slice/vipmesh-agent.service", controllers: ["pids", "memory", "cpu"] },
    ]);
  });

  it("puts a container's cgroup under the agent's own in the memory hierarchy (v1), or the unified one", () => {
    const own = OWN.replace("4:memory:/system.slice/vipmesh-agent.service", "4:memory:/limited/agent");
    expect(containerCgroup("vipmesh-tasks", "t1", MOUNTINFO, own)).toEqual({
      path: "/limited/agent/vipmesh-tasks/t1",
      memoryDir: "/sys/fs/cgroup/memory/limited/agent/vipmesh-tasks/t1",
    });
    expect(containerCgroup("vipmesh-tasks", "t1", MOUNTINFO, "0::/system.slice/a.service\n")).toEqual({
      path: "/system.slice/a.service/vipmesh-tasks/t1",
      memoryDir: "/sys/fs/cgroup/unified/system.slice/a.service/vipmesh-tasks/t1",
    });
  });

  it("writes the limits a task has, in v1's files and in v2's", () => {
    const limits = { pids: 64, memoryBytes: 256 << 20, nanoCpus: 500_000_000 };
    const v1 = settings(["pids", "memory", "cpu", "devices"], limits, false);
    expect(v1.slice(0, 4)).toEqual([
      ["pids.max", "64"],
      ["memory.limit_in_bytes", String(256 << 20)],
      ["cpu.cfs_period_us", "100000"],
      ["cpu.cfs_quota_us", "50000"],
    ]);
    // every device denied, then the character devices of a task's /dev: no block device
    expect(v1[4]).toEqual(["devices.deny", "a"]);
    expect(v1.slice(5).every(([file, rule]) => file === "devices.allow" && rule.startsWith("c "))).toBe(true);
    expect(settings(["pids", "memory", "cpu"], limits, true)).toEqual([
      ["pids.max", "64"],
      ["memory.max", String(256 << 20)],
      ["cpu.max", "50000 100000"],
    ]);
  });

  it("leaves out the limits a task does not have", () => {
    expect(settings(["pids", "memory", "cpu"], { pids: 4096, memoryBytes: 0, nanoCpus: 0 }, true)).toEqual([["pids.max", "4096"]]);
  });
});
