// Runs INSIDE the kernel VM (encrypted-lab.vm.test.ts boots it): a 2-node lab
// with an encrypted overlay network, in Debian's real kernel (this machine's
// has no ESP). The manager makes the keys, the agents get them over their
// mutual-TLS sessions and program ESP; this checks what crosses the underlay.
// Prints one line per check and exits non-zero at the first that fails; "ALL OK" at the end.

import { call, type wire } from "@vipmesh/api";
import { addrOf } from "@vipmesh/core";
import { REQUEST_LOOP, waitFor } from "@vipmesh/testing";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { labClient, labDown, labUp, listNamespaces } from "../src/lab.ts";

const LAB = "enc";
const started = Date.now();
function check(ok: boolean, what: string, detail = ""): void {
  console.log(`${ok ? "ok" : "FAILED"} [${((Date.now() - started) / 1000).toFixed(0)} s] ${what}${ok || !detail ? "" : `: ${detail}`}`);
  if (!ok) {
    labDown(LAB);
    process.exit(1);
  }
}
const sh = (ns: string, ...cmd: string[]) => execFileSync("ip", ["netns", "exec", ns, ...cmd], { encoding: "utf8", timeout: 60_000 });
const slow = <T>(what: string, f: () => T | Promise<T>) => waitFor(what, f, 240_000);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// keys rotate every 40 s: at least one whole rotation falls inside the request loop below
// no containerd: the VM emulates its CPU, and this lab runs process tasks only
const lab = await labUp({ name: LAB, nodes: 2, heartbeatMs: 10_000, keyRotationMs: 40_000, containerd: false });
const client = labClient(lab);
const whoami = ["vipmesh", "whoami", "--port", "8080"];
await call(client, "createNetwork", { spec: { name: "secure", options: { encrypted: "" } } });
const net = (await call(client, "inspectNetwork", { network: "secure" })).network!;
check(net.encrypted === true, `network secure is encrypted (VNI ${net.vni})`);
// two web tasks, one per node (spread), and a client box
await call(client, "createService", {
  spec: { annotations: { name: "web" }, taskTemplate: { container: { command: whoami } }, replicated: { replicas: 2 }, networks: [{ target: "secure" }] },
});
await call(client, "createService", { spec: { annotations: { name: "box" }, taskTemplate: { container: { command: ["sleep", "infinity"] } }, replicated: { replicas: 1 }, networks: [{ target: "secure" }] } });

const running = (service: string, n: number) =>
  slow(`${n} running tasks of ${service}`, async () => {
    const { tasks } = await call(client, "listTasks", { service });
    const up = tasks.filter((t) => t.desiredState === "running" && t.status?.state === "running");
    return up.length === n ? up : undefined;
  });
const webTasks = await running("web", 2);
const [box] = await running("box", 1);
check(new Set(webTasks.map((t) => t.nodeId)).size === 2, "the web tasks run on both nodes");
const sandboxOf = (t: wire.Task) => listNamespaces().find((ns) => ns.startsWith(lab.prefix) && ns.endsWith(t.id))!;
const ipOf = (t: wire.Task) => addrOf(t.networks.find((a) => a.networkId === net.id)!.addresses[0]!);
const remote = webTasks.find((t) => t.nodeId !== box!.nodeId)!;
const { nodes } = await call(client, "listNodes", {});
const nodeNs = (nodeId: string) => lab.nodes.find((n) => n.hostname === nodes.find((x) => x.id === nodeId)!.description!.hostname)!;
const boxNode = nodeNs(box!.nodeId);
const remoteNode = nodeNs(remote.nodeId);
const get = (url: string) => spawnSync("ip", ["netns", "exec", sandboxOf(box!), "curl", "-s", "--max-time", "5", url], { encoding: "utf8" });

// traffic crosses the encrypted overlay
await slow("box reaches the web task on the other node", () => /Task: /.test(get(`http://${ipOf(remote)}:8080/`).stdout) || undefined);
check(true, `box (${boxNode.hostname}) reaches web on ${remoteNode.hostname} at ${ipOf(remote)} over the encrypted network`);
const mtu = (ns: string, dev: string) => JSON.parse(sh(ns, "ip", "-j", "link", "show", dev))[0].mtu as number;
check(mtu(boxNode.netns, `vmvx${net.vni}`) === 1410 && mtu(sandboxOf(box!), "eth0") === 1410, "the encrypted network's MTU leaves room for ESP: 1410 on the VXLAN device and in the sandbox");
// a request larger than one packet: no fragment is lost to the smaller MTU
check(get(`http://${ipOf(remote)}:8080/?pad=${"x".repeat(4000)}`).status === 0, "a request of several packets crosses");

// the underlay, seen from the fabric's bridge port of the box's node: ESP, and no VXLAN of this VNI
const port = `u${lab.nodes.indexOf(boxNode)}`;
const capture = spawn("ip", ["netns", "exec", lab.fabric, "tcpdump", "-i", port, "-nn", "-U", "-w", "/tmp/underlay.pcap", "udp or esp"], { stdio: "ignore" });
await sleep(2000);
for (let i = 0; i < 5; i++) get(`http://${ipOf(remote)}:8080/`);
await sleep(1000);
capture.kill("SIGINT");
await new Promise((r) => capture.on("close", r));
const seen = execFileSync("tcpdump", ["-r", "/tmp/underlay.pcap", "-nn"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
const esp = seen.split("\n").filter((l) => l.includes("ESP(spi=")).length;
const plain = seen.split("\n").filter((l) => new RegExp(`vni ${net.vni}\\b`).test(l));
check(esp >= 10 && plain.length === 0, `the underlay carries ESP (${esp} packets) and no plaintext VXLAN of VNI ${net.vni}`, plain.slice(0, 3).join("\n"));

// plaintext VXLAN for the encrypted VNI, injected by a stranger on the underlay (the lab's client), is dropped by the guard
const dropped = () => Number(/meta ipsec missing counter packets (\d+)/.exec(sh(remoteNode.netns, "nft", "list", "table", "ip", "vipmesh_ipsec"))?.[1] ?? -1);
const before = dropped();
const inject = `
const dgram = require("node:dgram");
const s = dgram.createSocket("udp4");
const vxlan = Buffer.from([0x08, 0, 0, 0, (${net.vni} >> 16) & 255, (${net.vni} >> 8) & 255, ${net.vni} & 255, 0]);
const frame = Buffer.alloc(60, 0xff); // a broadcast frame; its content does not matter, it must not get in
let n = 0;
const next = () => n++ < 5 ? s.send(Buffer.concat([vxlan, frame]), 4789, "${remoteNode.addr}", next) : s.close();
next();`;
sh(lab.client, process.execPath, "-e", inject);
await sleep(500);
check(dropped() >= before + 5, `5 plaintext VXLAN packets for VNI ${net.vni} injected into ${remoteNode.hostname} are dropped (guard counter ${before} → ${dropped()})`);

// a key rotation (every 40 s) under a steady request loop loses no request
const spis = () => sh(boxNode.netns, "ip", "xfrm", "policy", "list").match(/(?<=spi )0x[0-9a-f]+/g)?.join(",") ?? "";
const states = () => (sh(boxNode.netns, "ip", "xfrm", "state", "list").match(/^src /gm) ?? []).length;
const loop = spawn("ip", ["netns", "exec", sandboxOf(box!), process.execPath, REQUEST_LOOP, ipOf(remote), "8080", "5000"], { stdio: ["ignore", "pipe", "inherit"] });
let out = "";
loop.stdout.on("data", (d: Buffer) => (out += d));
const ended = new Promise<void>((resolve) => loop.on("close", () => resolve()));
await slow("the loop to start", () => out.includes("started") || undefined);
const firstSpi = spis();
const stateCounts = new Set<number>();
await slow("a whole key rotation", async () => {
  stateCounts.add(states());
  return (spis() !== firstSpi && states() === 2) || undefined;
});
await sleep(3000);
loop.kill("SIGTERM");
await ended;
const result = JSON.parse(out.trim().split("\n").pop()!) as { ok: number; failed: number; errors: string[] };
check(
  result.failed === 0 && result.ok > 10,
  `a key rotation (sending SPI ${firstSpi} → ${spis()}, SAs per node ${[...stateCounts].join(" → ")}) under a request loop: ${result.ok} requests, none failed`,
  result.errors.join("; "),
);

// the keys never reached a disk or a command line outside the manager's data dir and the agents' memory
const logs = lab.nodes.map((n) => readFileSync(`${lab.dir}/agent-${n.hostname}.log`, "utf8")).join("");
const secrets = (sh(boxNode.netns, "ip", "xfrm", "state", "list").match(/0x[0-9a-f]{72}/g) ?? []).map((k) => k.slice(2));
check(secrets.length > 0 && secrets.every((k) => !logs.includes(k)), "no key appears in the agents' logs");

labDown(LAB);
check(!listNamespaces().some((n) => n.startsWith(lab.prefix)), "lab down leaves no namespace");
console.log("ALL OK");
process.exit(0);
