import { describe, expect, it } from "vitest";
import { KernelPlanError } from "../exec/canonical.ts";
import { FakeOverlay } from "./fake.ts";
import { FakeSandboxes } from "../sandbox/fake.ts";
import type { OverlayPlan } from "./types.ts";
import type { SandboxPlan } from "../sandbox/types.ts";

const plan: OverlayPlan = {
  localAddr: "192.168.100.11",
  networks: [
    { networkId: "net-b", vni: 4097, remotes: [] },
    {
      networkId: "net-a",
      vni: 4096,
      remotes: [
        { ip: "10.0.3.10", mac: "02:42:0A:00:03:0A", nodeAddr: "192.168.100.12" },
        { ip: "10.0.3.9", mac: "02:42:0a:00:03:09", nodeAddr: "192.168.100.13" },
      ],
    },
  ],
};

const sandbox = (name: string, addr = "10.0.3.2/24", vni = 4096): SandboxPlan => ({
  taskId: name,
  name: `vm-${name}`,
  hostname: name,
  interfaces: [{ ifname: "eth0", vni, addr, mac: "02:42:0a:00:03:02" }],
});

describe("FakeOverlay", () => {
  it("dumps the plan as sorted, canonical text", async () => {
    const fake = new FakeOverlay();
    await fake.sync(plan);
    expect(fake.dump()).toBe(
      [
        "local 192.168.100.11",
        "network 4096 net-a: vmbr4096 vmvx4096",
        "  4096 10.0.3.9 02:42:0a:00:03:09 via 192.168.100.13",
        "  4096 10.0.3.10 02:42:0a:00:03:0a via 192.168.100.12",
        "network 4097 net-b: vmbr4097 vmvx4097",
        "",
      ].join("\n"),
    );
    expect(fake.nodeFor(4096, "10.0.3.10")).toBe("192.168.100.12");
    expect(fake.nodeFor(4097, "10.0.3.10")).toBeUndefined();
  });

  it("counts changes: none for the same plan again, one line each for a removed and a moved remote", async () => {
    const fake = new FakeOverlay();
    await fake.sync(plan);
    const after = fake.writes;
    await fake.sync(structuredClone(plan));
    expect(fake.writes).toBe(after);
    const next = structuredClone(plan);
    next.networks[1]!.remotes = [{ ip: "10.0.3.9", mac: "02:42:0a:00:03:09", nodeAddr: "192.168.100.14" }];
    await fake.sync(next);
    expect(fake.writes - after).toBe(3); // 10.0.3.10 gone; 10.0.3.9's old and new line
  });

  it("refuses the plans the kernel driver refuses, and can be told to fail", async () => {
    const fake = new FakeOverlay();
    const twice = structuredClone(plan);
    twice.networks[1]!.remotes.push({ ip: "10.0.3.9", mac: "02:42:0a:00:03:99", nodeAddr: "192.168.100.13" });
    await expect(fake.sync(twice)).rejects.toThrow(KernelPlanError);
    await expect(fake.sync({ localAddr: "192.168.100.11", networks: [{ networkId: "x y", vni: 1, remotes: [] }] })).rejects.toThrow(/network ID/);
    await expect(fake.sync({ localAddr: "node1", networks: [{ networkId: "x", vni: 1, remotes: [] }] })).rejects.toThrow(/local address/);
    await expect(
      fake.sync({ localAddr: "192.168.100.11", networks: [{ networkId: "x", vni: 1, remotes: [{ ip: "10.0.0.2", mac: "ff:ff:ff:ff:ff:ff", nodeAddr: "192.168.100.12" }] }] }),
    ).rejects.toThrow(/unicast/);
    fake.failNextSync(new Error("boom"));
    await expect(fake.sync(plan)).rejects.toThrow("boom");
    await fake.sync(plan);
    expect(fake.syncs).toBe(6);
    expect((await fake.read()).networks.map((n) => n.vni)).toEqual([4096, 4097]);
  });
});

describe("FakeSandboxes", () => {
  it("keeps sandboxes, lists them by prefix without hostname, and dumps them", async () => {
    const fake = new FakeSandboxes();
    await fake.ensure(sandbox("t2", "10.0.3.3/24"));
    await fake.ensure(sandbox("t1"));
    expect(await fake.list("vm-")).toEqual([
      { taskId: "t1", name: "vm-t1", interfaces: [{ ifname: "eth0", vni: 4096, addr: "10.0.3.2/24", mac: "02:42:0a:00:03:02" }] },
      { taskId: "t2", name: "vm-t2", interfaces: [{ ifname: "eth0", vni: 4096, addr: "10.0.3.3/24", mac: "02:42:0a:00:03:02" }] },
    ]);
    expect(await fake.list("vm-t2")).toHaveLength(1);
    expect(fake.dump()).toBe(
      ["sandbox vm-t1 task t1 hostname t1", "  eth0 vni 4096 10.0.3.2/24 02:42:0a:00:03:02", "sandbox vm-t2 task t2 hostname t2", "  eth0 vni 4096 10.0.3.3/24 02:42:0a:00:03:02", ""].join("\n"),
    );
    await fake.remove("vm-t2");
    await fake.remove("vm-t2");
    expect((await fake.list("vm-")).map((s) => s.name)).toEqual(["vm-t1"]);
  });

  it("writes nothing for the same plan again and keeps an interface across a changed address", async () => {
    const fake = new FakeSandboxes();
    await fake.ensure(sandbox("t1"));
    const writes = fake.writes;
    const ifindex = fake.ifindex("vm-t1", "eth0");
    await fake.ensure(sandbox("t1"));
    expect(fake.writes).toBe(writes);
    await fake.ensure(sandbox("t1", "10.0.3.20/24"));
    expect(fake.writes).toBe(writes + 1);
    expect(fake.ifindex("vm-t1", "eth0")).toBe(ifindex);
  });

  it("with an overlay, refuses a VNI that has no network, as the kernel refuses a missing bridge", async () => {
    const overlay = new FakeOverlay();
    await overlay.sync(plan);
    const fake = new FakeSandboxes({ overlay });
    await expect(fake.ensure(sandbox("t1", "10.0.3.2/24", 5000))).rejects.toThrow(/bridge vmbr5000 is not there/);
    await fake.ensure(sandbox("t1", "10.0.3.2/24", 4097));
    expect(await fake.list("vm-")).toHaveLength(1);
  });
});
