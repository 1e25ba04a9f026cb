// The kernel drivers against the real kernel, inside namespaces each test
// makes for itself: two "nodes" joined by a veth fabric, the drivers pointed
// at a node namespace as the agent would run inside one. Assertions read the
// kernel back (ip -d link, bridge fdb, ip neigh) and send real TCP between
// sandboxes across VXLAN.

import { macForIpv4 } from "@vipmesh/core";
import { waitFor } from "@vipmesh/testing";
import { execFile, execFileSync, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { promisify } from "node:util";
import { afterAll, afterEach, beforeEach, describe, expect, it } from "vitest";
import { canonicalOverlayPlan, sandboxStateOf } from "../src/exec/canonical.ts";
import { FakeOverlay } from "../src/overlay/fake.ts";
import { FakeSandboxes } from "../src/sandbox/fake.ts";
import { KernelOverlay } from "../src/overlay/kernel.ts";
import { KernelCommandError, readJson, run, runBatch, type KernelWrite } from "../src/exec/run.ts";
import { KernelSandboxes } from "../src/sandbox/kernel.ts";
import { names } from "../src/exec/names.ts";
import type { OverlayPlan } from "../src/overlay/types.ts";
import type { SandboxPlan } from "../src/sandbox/types.ts";
import { kernelDescribe } from "@vipmesh/testing/kernel";
import { NETNS_ETC } from "../src/sandbox/etc.ts";
import { listNamespaces, TestNamespaces, twoNodes, usedPrefixes } from "./kernel-netns.ts";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

let ns: TestNamespaces;
const children: ChildProcess[] = [];

/** Driver options for a node namespace, recording every write. */
function recorded(netns: string): { netns: string; onWrite: (w: KernelWrite) => void; writes: KernelWrite[] } {
  const writes: KernelWrite[] = [];
  return { netns, onWrite: (w) => writes.push(w), writes };
}

const shown = (writes: KernelWrite[]) => writes.map((w) => `${w.tool}: ${w.lines.join(" | ")}`);

const remote = (ip: string, nodeAddr: string) => ({ ip, mac: macForIpv4(ip), nodeAddr });

function sandboxPlan(prefix: string, taskId: string, interfaces: [ifname: string, vni: number, addr: string][]): SandboxPlan {
  return {
    taskId,
    name: names.sandbox(prefix, taskId),
    hostname: taskId.slice(0, 12),
    interfaces: interfaces.map(([ifname, vni, addr]) => ({ ifname, vni, addr, mac: macForIpv4(addr) })),
  };
}

const links = (netns: string): Promise<Json[]> => readJson<Json[]>("ip", ["-d", "addr", "show"], { netns });
const linkNamed = async (netns: string, ifname: string): Promise<Json> => (await links(netns)).find((l) => l.ifname === ifname);

async function fdbOf(netns: string, dev: string): Promise<string[]> {
  const entries = await readJson<Json[]>("bridge", ["fdb", "show", "dev", dev], { netns });
  return entries
    .filter((e) => e.flags?.includes("self"))
    .map((e) => `${e.mac} dst ${e.dst} ${e.state}`)
    .sort();
}

async function neighboursOf(netns: string, dev: string): Promise<string[]> {
  const entries = await readJson<Json[]>("ip", ["neigh", "show", "dev", dev], { netns });
  return entries.map((e) => `${e.dst} ${e.lladdr} ${e.state.join(",")}`).sort();
}

const SERVER = `const [name, port] = process.argv.slice(1);
require("node:net").createServer((s) => s.end(name)).listen(Number(port), "0.0.0.0", () => console.log("listening"));`;

const CLIENT = `const [host, port] = process.argv.slice(1);
const s = require("node:net").connect({ host, port: Number(port), timeout: 1500 });
let got = "";
s.on("data", (d) => (got += d));
s.on("end", () => { console.log(got); process.exit(0); });
s.on("timeout", () => { console.error("timeout"); process.exit(3); });
s.on("error", (e) => { console.error(e.code); process.exit(4); });`;

/** A TCP server in a sandbox that answers every connection with `name`. */
async function startServer(sandbox: string, name: string, port: number): Promise<void> {
  const child = spawn("ip", ["netns", "exec", sandbox, process.execPath, "-e", SERVER, name, String(port)], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  await new Promise<void>((resolve, reject) => {
    let err = "";
    child.stderr!.on("data", (d) => (err += d));
    child.stdout!.on("data", (d) => String(d).includes("listening") && resolve());
    child.on("exit", (code) => reject(new Error(`server in ${sandbox} exited ${code}: ${err}`)));
  });
}

/** What a TCP connection from `sandbox` to host:port reads, or the reason it failed. */
async function tcpGet(sandbox: string, host: string, port: number): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)("ip", ["netns", "exec", sandbox, process.execPath, "-e", CLIENT, host, String(port)]);
    return stdout.trim();
  } catch (e) {
    return `failed: ${String((e as { stderr?: string }).stderr ?? e).trim()}`;
  }
}

/** Fields of a link that a driver must not change when the link is not its own. */
const identity = (l: Json) => ({
  ifindex: l.ifindex,
  ifname: l.ifname,
  flags: l.flags,
  master: l.master,
  mtu: l.mtu,
  kind: l.linkinfo?.info_kind,
  vni: l.linkinfo?.info_data?.id,
  addrs: l.addr_info?.map((a: Json) => a.local),
});

// one guarded suite: its hooks run `ip` too, so they must not run where it cannot
kernelDescribe("kernel drivers in namespaces", () => {
  beforeEach(() => {
    ns = new TestNamespaces();
  });

  afterEach(() => {
    for (const c of children.splice(0)) c.kill("SIGKILL");
    ns.cleanup();
  });

  afterAll(() => {
    const ours = (n: string) => usedPrefixes.some((p) => n.startsWith(p));
    expect(listNamespaces().filter(ours)).toEqual([]);
    expect((existsSync(NETNS_ETC) ? readdirSync(NETNS_ETC) : []).filter(ours)).toEqual([]);
  });

  describe("run: the one place that runs ip and bridge", () => {
    it("says which command failed, how, and what it printed", async () => {
      const n = ns.add("r");
      const err = await run("ip", ["link", "show", "dev", "nosuch0"], { netns: n }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(KernelCommandError);
      expect((err as KernelCommandError).exitCode).toBe(1);
      expect((err as Error).message).toBe(`ip -n ${n} link show dev nosuch0: exit status 1: Device "nosuch0" does not exist.`);
    });

    it("goes on after a failed batch line, tolerates 'exists' and 'missing', and names the real failures", async () => {
      const n = ns.add("r");
      const outcome = await runBatch(
        "ip",
        [
          { text: "link del dev nosuch0", tolerate: "missing" },
          { text: "link set dev nosuch1 up" },
          { text: "link add name vmt0 type bridge", tolerate: "exists" },
          { text: "link add name vmt0 type bridge", tolerate: "exists" },
        ],
        { netns: n },
      );
      expect(outcome.tolerated.map((f) => f.lineNo)).toEqual([1, 4]);
      expect(outcome.failures).toEqual([{ lineNo: 2, text: "link set dev nosuch1 up", message: 'Cannot find device "nosuch1"' }]);
      expect(outcome.aborted).toBeUndefined();
      expect(await linkNamed(n, "vmt0")).toBeDefined();
    });

    it("reports a batch that `ip neigh` ended early (it exits on a failed delete, -force or not)", async () => {
      const n = ns.add("r");
      const outcome = await runBatch(
        "ip",
        [
          { text: "neigh del 10.9.9.9 dev lo", tolerate: "missing" },
          { text: "link add name vmt1 type bridge" },
        ],
        { netns: n },
      );
      expect(outcome.aborted).toMatch(/No such file or directory/);
      expect(await linkNamed(n, "vmt1")).toBeUndefined();
    });
  });

  describe("KernelOverlay", () => {
    const planOn = (localAddr: string, nodeAddr: string): OverlayPlan => ({
      localAddr,
      networks: [
        { networkId: "net-b", vni: 4097, remotes: [] },
        { networkId: "net-a", vni: 4096, remotes: [remote("10.0.3.10", nodeAddr), remote("10.0.3.6", nodeAddr)] },
      ],
    });

    /** Devices and entries vipmesh must leave alone, some with names close to its own. */
    async function foreignDevices(netns: string): Promise<() => Promise<unknown>> {
      await run("ip", ["-batch", "-"], {
        netns,
        input: [
          "link add name br-other type bridge",
          "link add name vx-other type vxlan id 9 local 192.168.77.1 dstport 4790 nolearning",
          "link set dev vx-other master br-other up",
          "link add name vmvx7 type veth peer name vmvx7p",
          "link add name vmbr12 type veth peer name vmbr12p",
          "neigh replace 10.9.0.1 lladdr 02:00:00:00:00:01 dev vx-other nud permanent",
          "",
        ].join("\n"),
      });
      await run("bridge", ["fdb", "append", "00:00:00:00:00:00", "dev", "vx-other", "dst", "192.168.77.9", "self", "permanent"], { netns });
      const snapshot = async () => ({
        links: (await links(netns)).filter((l) => !/^vm(br|vx)\d+$/.test(l.ifname) || l.linkinfo?.info_kind === "veth").map(identity),
        fdb: await fdbOf(netns, "vx-other"),
        neighbours: await neighboursOf(netns, "vx-other"),
      });
      return snapshot;
    }

    it("builds a bridge and a proxying VXLAN per network with static entries per remote, and read() gives the plan back", async () => {
      const { n1, addr1, addr2 } = twoNodes(ns);
      const foreign = await foreignDevices(n1);
      const before = await foreign();
      const overlay = new KernelOverlay({ netns: n1 });
      const plan = planOn(addr1, addr2);
      await overlay.sync(plan);

      expect(await overlay.read()).toEqual(canonicalOverlayPlan(plan));
      const vx = await linkNamed(n1, "vmvx4096");
      expect(vx.linkinfo.info_kind).toBe("vxlan");
      expect(vx.linkinfo.info_data).toMatchObject({ id: 4096, local: addr1, port: 4789, learning: false, proxy: true });
      expect(vx).toMatchObject({ mtu: 1450, master: "vmbr4096", addr_info: [] });
      expect(vx.flags).toContain("UP");
      const br = await linkNamed(n1, "vmbr4096");
      expect(br.linkinfo.info_kind).toBe("bridge");
      expect(br.flags).toContain("UP");
      expect(br.addr_info).toEqual([]); // not even an IPv6 link-local address: the node is on no overlay
      expect(await fdbOf(n1, "vmvx4096")).toEqual([
        `02:42:0a:00:03:06 dst ${addr2} permanent`,
        `02:42:0a:00:03:0a dst ${addr2} permanent`,
      ]);
      expect(await neighboursOf(n1, "vmvx4096")).toEqual(["10.0.3.10 02:42:0a:00:03:0a PERMANENT", "10.0.3.6 02:42:0a:00:03:06 PERMANENT"]);
      expect((await linkNamed(n1, "vmvx4097")).master).toBe("vmbr4097");
      expect(await foreign()).toEqual(before);

      // an encrypted network's smaller MTU (room for ESP) is set in place, and read back
      const encrypted = { ...plan, networks: plan.networks.map((n) => (n.vni === 4097 ? { ...n, mtu: 1410 } : n)) };
      const vx4097 = (await linkNamed(n1, "vmvx4097")).ifindex;
      await overlay.sync(encrypted);
      expect(await linkNamed(n1, "vmvx4097")).toMatchObject({ mtu: 1410, ifindex: vx4097 });
      expect(await overlay.read()).toEqual(canonicalOverlayPlan(encrypted));
    });

    it("writes in one ip and one bridge batch, and nothing at all when already converged", async () => {
      const { n1, addr1, addr2 } = twoNodes(ns);
      const o = recorded(n1);
      const overlay = new KernelOverlay(o);
      await overlay.sync(planOn(addr1, addr2));
      expect(o.writes.map((w) => w.tool)).toEqual(["ip", "bridge"]);
      o.writes.length = 0;
      await overlay.sync(planOn(addr1, addr2));
      expect(o.writes).toEqual([]);
      // and a plan just applied is trusted for a while: drift is repaired by the first sync after it
      await run("bridge", ["fdb", "del", "02:42:0a:00:03:0a", "dev", "vmvx4096", "self"], { netns: n1 });
      await overlay.sync(planOn(addr1, addr2));
      expect(o.writes).toEqual([]);
      await new KernelOverlay({ ...o, trustMs: 0 }).sync(planOn(addr1, addr2));
      expect(shown(o.writes)).toEqual([`bridge: fdb replace 02:42:0a:00:03:0a dev vmvx4096 dst ${addr2} self permanent`]);
    });

    it("removes a remote's entries, moves a remote to its new node, and removes networks, with only those writes", async () => {
      const { n1, addr1, addr2 } = twoNodes(ns);
      const foreign = await foreignDevices(n1);
      const before = await foreign();
      const o = recorded(n1);
      const overlay = new KernelOverlay(o);
      await overlay.sync(planOn(addr1, addr2));
      o.writes.length = 0;

      const moved: OverlayPlan = { localAddr: addr1, networks: [{ networkId: "net-a", vni: 4096, remotes: [remote("10.0.3.6", "192.168.77.3")] }] };
      await overlay.sync(moved);
      expect(shown(o.writes)).toEqual([
        "ip: link del dev vmvx4097 | link del dev vmbr4097 | neigh del 10.0.3.10 dev vmvx4096",
        "bridge: fdb del 02:42:0a:00:03:0a dev vmvx4096 self | fdb replace 02:42:0a:00:03:06 dev vmvx4096 dst 192.168.77.3 self permanent",
      ]);
      expect(await fdbOf(n1, "vmvx4096")).toEqual(["02:42:0a:00:03:06 dst 192.168.77.3 permanent"]);
      expect(await neighboursOf(n1, "vmvx4096")).toEqual(["10.0.3.6 02:42:0a:00:03:06 PERMANENT"]);
      expect(await overlay.read()).toEqual(moved);

      await overlay.sync({ localAddr: addr1, networks: [] });
      expect((await links(n1)).map((l) => l.ifname).filter((name) => /^vm(br|vx)\d+$/.test(name))).toEqual(["vmvx7", "vmbr12"]); // the foreign veths
      expect(await overlay.read()).toEqual({ localAddr: "", networks: [] });
      expect(await foreign()).toEqual(before);
    });

    it("repairs drift: restores deleted entries, removes stray and flooding ones, brings devices back up", async () => {
      const { n1, addr1, addr2 } = twoNodes(ns);
      const overlay = new KernelOverlay({ netns: n1, trustMs: 0 });
      const plan = planOn(addr1, addr2);
      await overlay.sync(plan);
      await run("ip", ["-batch", "-"], {
        netns: n1,
        input: [
          "neigh del 10.0.3.6 dev vmvx4096",
          "neigh replace 10.0.3.99 lladdr 02:42:0a:00:03:63 dev vmvx4096 nud permanent",
          "link set dev vmbr4096 down",
          "addr add 10.0.3.1/24 dev vmbr4096",
          "",
        ].join("\n"),
      });
      await run("bridge", ["-batch", "-"], {
        netns: n1,
        input: ["fdb del 02:42:0a:00:03:0a dev vmvx4096 self", "fdb append 00:00:00:00:00:00 dev vmvx4096 dst 192.168.77.9 self permanent", ""].join("\n"),
      });
      await overlay.sync(plan);
      expect(await overlay.read()).toEqual(canonicalOverlayPlan(plan));
      expect(await fdbOf(n1, "vmvx4096")).toEqual([`02:42:0a:00:03:06 dst ${addr2} permanent`, `02:42:0a:00:03:0a dst ${addr2} permanent`]);
      const br = await linkNamed(n1, "vmbr4096");
      expect(br.flags).toContain("UP");
      expect(br.addr_info).toEqual([]);
    });

    it("makes a VXLAN device anew when its local address changed, entries included", async () => {
      const { n1, addr1, addr2 } = twoNodes(ns);
      const overlay = new KernelOverlay({ netns: n1 });
      await overlay.sync(planOn(addr1, addr2));
      const old = await linkNamed(n1, "vmvx4096");
      await run("ip", ["addr", "add", "192.168.77.11/24", "dev", "fab0"], { netns: n1 });
      const plan = planOn("192.168.77.11", addr2);
      await overlay.sync(plan);
      const vx = await linkNamed(n1, "vmvx4096");
      expect(vx.ifindex).not.toBe(old.ifindex);
      expect(vx.linkinfo.info_data.local).toBe("192.168.77.11");
      expect(await overlay.read()).toEqual(canonicalOverlayPlan(plan));
    });

    it("refuses a plan whose words could break a batch line, before writing anything", async () => {
      const { n1, addr1 } = twoNodes(ns);
      const o = recorded(n1);
      const overlay = new KernelOverlay(o);
      await expect(overlay.sync({ localAddr: addr1, networks: [{ networkId: "a\nlink del dev fab0", vni: 4096, remotes: [] }] })).rejects.toThrow(/network ID/);
      expect(o.writes).toEqual([]);
    });
  });

  describe("KernelSandboxes", () => {
    it("makes a sandbox, reads it back, and a second ensure writes nothing and keeps the interface", async () => {
      const { n1, addr1 } = twoNodes(ns);
      await new KernelOverlay({ netns: n1 }).sync({
        localAddr: addr1,
        networks: [
          { networkId: "net-a", vni: 4096, remotes: [] },
          { networkId: "net-b", vni: 4097, remotes: [] },
        ],
      });
      const o = recorded(n1);
      const sandboxes = new KernelSandboxes({ ...o, trustMs: 0 });
      const prefix = ns.name("s1-");
      const plan = sandboxPlan(prefix, "task0000001", [
        ["eth0", 4096, "10.0.3.5/24"],
        ["eth1", 4097, "10.0.4.5/24"],
      ]);
      await sandboxes.ensure(plan);

      expect(await sandboxes.list(prefix)).toEqual([sandboxStateOf(plan)]);
      const eth0 = await linkNamed(plan.name, "eth0");
      expect(eth0).toMatchObject({ mtu: 1450, address: "02:42:0a:00:03:05" });
      expect(eth0.flags).toContain("UP");
      expect((await linkNamed(plan.name, "lo")).flags).toContain("UP");
      const host = await linkNamed(n1, names.hostVeth("task0000001", 0));
      expect(host).toMatchObject({ master: "vmbr4096", mtu: 1450, ifalias: `vmsb/${plan.name}/eth0`, addr_info: [] });

      o.writes.length = 0;
      await sandboxes.ensure(plan);
      expect(o.writes).toEqual([]);
      expect((await linkNamed(plan.name, "eth0")).ifindex).toBe(eth0.ifindex);

      // a changed address is fixed in place: same interface, no pair made anew
      const moved = sandboxPlan(prefix, "task0000001", [
        ["eth0", 4096, "10.0.3.50/24"],
        ["eth1", 4097, "10.0.4.5/24"],
      ]);
      o.writes.length = 0;
      await sandboxes.ensure(moved);
      expect(shown(o.writes)).toEqual([
        "ip: link set dev eth0 address 02:42:0a:00:03:32 | addr del 10.0.3.5/24 dev eth0 | addr add 10.0.3.50/24 dev eth0",
      ]);
      expect((await linkNamed(plan.name, "eth0")).ifindex).toBe(eth0.ifindex);
      expect(await sandboxes.list(prefix)).toEqual([sandboxStateOf(moved)]);

      // an interface deleted behind the driver's back is made again
      await run("ip", ["link", "del", "dev", "eth1"], { netns: plan.name });
      await sandboxes.ensure(moved);
      expect(await sandboxes.list(prefix)).toEqual([sandboxStateOf(moved)]);

      // an encrypted network's MTU on both ends, set in place
      const encrypted = { ...moved, interfaces: moved.interfaces.map((i) => (i.ifname === "eth1" ? { ...i, mtu: 1410 } : i)) };
      const eth1 = (await linkNamed(plan.name, "eth1")).ifindex;
      await sandboxes.ensure(encrypted);
      expect(await linkNamed(plan.name, "eth1")).toMatchObject({ mtu: 1410, ifindex: eth1 });
      expect(await linkNamed(n1, names.hostVeth("task0000001", 1))).toMatchObject({ mtu: 1410 });
      expect(await sandboxes.list(prefix)).toEqual([sandboxStateOf(encrypted)]);
    });

    it("refuses an interface whose network has no bridge, and makes nothing", async () => {
      const { n1 } = twoNodes(ns);
      const sandboxes = new KernelSandboxes({ netns: n1, trustMs: 0 });
      const prefix = ns.name("s1-");
      await expect(sandboxes.ensure(sandboxPlan(prefix, "task0000002", [["eth0", 5000, "10.0.9.2/24"]]))).rejects.toThrow(
        /joins VNI 5000, but its bridge vmbr5000 is not there/,
      );
      expect(await sandboxes.list(prefix)).toEqual([]);
    });

    it("removes a sandbox, and the host end of one whose namespace name is gone while a process holds it", async () => {
      const { n1, addr1 } = twoNodes(ns);
      await new KernelOverlay({ netns: n1 }).sync({ localAddr: addr1, networks: [{ networkId: "net-a", vni: 4096, remotes: [] }] });
      const o = recorded(n1);
      const sandboxes = new KernelSandboxes({ ...o, trustMs: 0 });
      const prefix = ns.name("s1-");
      const a = sandboxPlan(prefix, "taska00001", [["eth0", 4096, "10.0.3.5/24"]]);
      const b = sandboxPlan(prefix, "taskb00001", [["eth0", 4096, "10.0.3.6/24"]]);
      await sandboxes.ensure(a);
      await sandboxes.ensure(b);

      await sandboxes.remove(a.name);
      expect(await sandboxes.list(prefix)).toEqual([sandboxStateOf(b)]);
      expect(await linkNamed(n1, names.hostVeth(a.taskId, 0))).toBeUndefined();
      o.writes.length = 0;
      await sandboxes.remove(a.name); // gone already: fine, and nothing to write
      expect(o.writes).toEqual([]);

      const holder = spawn("ip", ["netns", "exec", b.name, "sleep", "60"], { stdio: "ignore" });
      children.push(holder);
      // the holder is in the namespace once its /proc/PID/ns/net is the namespace the name is mounted on
      const netnsInode = statSync(`/run/netns/${b.name}`).ino;
      await waitFor("sleep to enter the sandbox", () => holder.pid !== undefined && statSync(`/proc/${holder.pid}/ns/net`).ino === netnsInode);
      execFileSync("ip", ["netns", "del", b.name]);
      expect(await linkNamed(n1, names.hostVeth(b.taskId, 0))).toBeDefined();
      expect(await sandboxes.list(prefix)).toEqual([{ taskId: b.taskId, name: b.name, interfaces: [] }]);
      await sandboxes.remove(b.name);
      expect(await linkNamed(n1, names.hostVeth(b.taskId, 0))).toBeUndefined();
      expect(await sandboxes.list(prefix)).toEqual([]);
    });
    it("lists, removes and remakes a sandbox whose name outlived its namespace (as names made under `ip netns exec` do)", async () => {
      const { n1, addr1 } = twoNodes(ns);
      await new KernelOverlay({ netns: n1 }).sync({ localAddr: addr1, networks: [{ networkId: "net-a", vni: 4096, remotes: [] }] });
      const sandboxes = new KernelSandboxes({ netns: n1, trustMs: 0 });
      const prefix = ns.name("s1-");
      const plan = sandboxPlan(prefix, "taskd00001", [["eth0", 4096, "10.0.3.5/24"]]);
      // `ip -n` runs in a mount namespace of its own: the namespace it adds is gone when it exits, its name stays
      execFileSync("ip", ["-n", n1, "netns", "add", plan.name]);
      await expect(run("ip", ["link", "show"], { netns: plan.name })).rejects.toThrow(/setting the network namespace/);
      expect(await sandboxes.list(prefix)).toEqual([{ taskId: plan.taskId, name: plan.name, interfaces: [] }]);
      await sandboxes.ensure(plan);
      expect(await sandboxes.list(prefix)).toEqual([sandboxStateOf(plan)]);

      execFileSync("ip", ["netns", "del", plan.name]);
      execFileSync("ip", ["-n", n1, "netns", "add", plan.name]);
      await sandboxes.remove(plan.name);
      expect(await sandboxes.list(prefix)).toEqual([]);
    });
  });

  describe("two nodes, end to end", () => {
    it("sandboxes on one VNI talk across VXLAN; a sandbox on another VNI reaches neither", async () => {
      const { n1, n2, addr1, addr2 } = twoNodes(ns);
      const p1 = ns.name("s1-");
      const p2 = ns.name("s2-");
      const a = sandboxPlan(p1, "taska000001", [["eth0", 4096, "10.0.3.5/24"]]); // node 1
      const b = sandboxPlan(p2, "taskb000001", [["eth0", 4096, "10.0.3.6/24"]]); // node 2
      const c = sandboxPlan(p2, "taskc000001", [["eth0", 4097, "10.0.3.7/24"]]); // node 2, the other network, same subnet
      await new KernelOverlay({ netns: n1 }).sync({
        localAddr: addr1,
        networks: [
          { networkId: "net-a", vni: 4096, remotes: [remote("10.0.3.6", addr2)] },
          { networkId: "net-b", vni: 4097, remotes: [] },
        ],
      });
      await new KernelOverlay({ netns: n2 }).sync({
        localAddr: addr2,
        networks: [
          { networkId: "net-a", vni: 4096, remotes: [remote("10.0.3.5", addr1)] },
          // node 2 even believes A is on net-b: node 1 still must not deliver net-b frames to net-a
          { networkId: "net-b", vni: 4097, remotes: [remote("10.0.3.5", addr1)] },
        ],
      });
      await new KernelSandboxes({ netns: n1 }).ensure(a);
      await new KernelSandboxes({ netns: n2 }).ensure(b);
      await new KernelSandboxes({ netns: n2 }).ensure(c);
      await startServer(a.name, "A", 7000);
      await startServer(b.name, "B", 7000);
      const vxBefore = await readJson<Json[]>("ip", ["-s", "link", "show", "dev", "vmvx4096"], { netns: n1 });

      expect(await tcpGet(a.name, "10.0.3.6", 7000)).toBe("B");
      expect(await tcpGet(b.name, "10.0.3.5", 7000)).toBe("A");
      const [aNeighbour] = await readJson<Json[]>("ip", ["neigh", "show", "10.0.3.6", "dev", "eth0"], { netns: a.name });
      expect(aNeighbour.lladdr).toBe(macForIpv4("10.0.3.6")); // answered by node 1's VXLAN proxy
      const vxAfter = await readJson<Json[]>("ip", ["-s", "link", "show", "dev", "vmvx4096"], { netns: n1 });
      expect(vxAfter[0].stats64.tx.packets).toBeGreaterThan(vxBefore[0].stats64.tx.packets);
      expect(vxAfter[0].stats64.rx.packets).toBeGreaterThan(vxBefore[0].stats64.rx.packets);

      const [fromC1, fromC2] = await Promise.all([tcpGet(c.name, "10.0.3.5", 7000), tcpGet(c.name, "10.0.3.6", 7000)]);
      expect(fromC1).toMatch(/^failed/);
      expect(fromC2).toMatch(/^failed/);
    });
  });

  describe("the fakes", () => {
    it("read back what the kernel drivers read back, after the same calls", async () => {
      const { n1, addr1, addr2 } = twoNodes(ns);
      const kernel = { overlay: new KernelOverlay({ netns: n1 }), sandboxes: new KernelSandboxes({ netns: n1 }) };
      const fakeOverlay = new FakeOverlay();
      const fake = { overlay: fakeOverlay, sandboxes: new FakeSandboxes({ overlay: fakeOverlay }) };
      const prefix = ns.name("s1-");
      const plans: OverlayPlan[] = [
        { localAddr: addr1, networks: [{ networkId: "net-a", vni: 4096, remotes: [remote("10.0.3.6", addr2), remote("10.0.3.7", addr2)] }] },
        {
          localAddr: addr1,
          networks: [
            { networkId: "net-a", vni: 4096, remotes: [remote("10.0.3.7", "192.168.77.3")] },
            { networkId: "net-b", vni: 4097, remotes: [remote("10.0.4.7", addr2)] },
          ],
        },
        { localAddr: addr1, networks: [] },
      ];
      const sandbox = sandboxPlan(prefix, "taskf00001", [["eth0", 4096, "10.0.3.5/24"]]);
      for (const [step, plan] of plans.entries()) {
        for (const d of [kernel, fake]) {
          await d.overlay.sync(plan);
          if (step === 0) await d.sandboxes.ensure(sandbox);
          if (step === 1) await d.sandboxes.remove(sandbox.name);
        }
        expect(await kernel.overlay.read()).toEqual(await fake.overlay.read());
        expect(await kernel.sandboxes.list(prefix)).toEqual(await fake.sandboxes.list(prefix));
      }
    });
  });
});
