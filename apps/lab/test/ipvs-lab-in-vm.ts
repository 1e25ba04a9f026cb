// Runs INSIDE the kernel VM (ipvs-lab.vm.test.ts boots it): a 2-node lab on the
// IPVS dataplane, in Debian's real kernel. Prints one line per check and exits
// non-zero at the first that fails; "ALL OK" at the end.

import { call, type wire } from "@vipmesh/api";
import { addrOf, isTaskReady } from "@vipmesh/core";
import { REQUEST_LOOP, waitFor } from "@vipmesh/testing";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { killAgent, labClient, labDown, labUp, listNamespaces, startAgent } from "../src/lab.ts";

const KEEPALIVE = fileURLToPath(new URL("./keepalive-client.mjs", import.meta.url));

const started = Date.now();
function check(ok: boolean, what: string, detail = ""): void {
  console.log(`${ok ? "ok" : "FAILED"} [${((Date.now() - started) / 1000).toFixed(0)} s] ${what}${ok || !detail ? "" : `: ${detail}`}`);
  if (!ok) {
    labDown("ipvs");
    process.exit(1);
  }
}
const sh = (ns: string, ...cmd: string[]) => execFileSync("ip", ["netns", "exec", ns, ...cmd], { encoding: "utf8", timeout: 60_000 });
const slow = <T>(what: string, f: () => T | Promise<T>) => waitFor(what, f, 240_000);

// heartbeats every 10 s (down after 30 s): an agent restarting under emulation takes longer than the default's 15 s
// no containerd: the VM emulates its CPU, and this lab runs process tasks only
const lab = await labUp({ name: "ipvs", nodes: 2, dataplane: "ipvs", heartbeatMs: 10_000, containerd: false });
const client = labClient(lab);
const { nodes } = await call(client, "listNodes", {});
check(nodes.every((n) => n.description?.dataplane === "ipvs"), "both agents run the IPVS dataplane", nodes.map((n) => n.description?.dataplane).join(" "));

const HEALTHY = { test: ["curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:8080/health"], intervalMs: 1000, timeoutMs: 5000, retries: 2, startPeriodMs: 0 };
const whoami = ["vipmesh", "whoami", "--port", "8080"];
await call(client, "createNetwork", { spec: { name: "appnet" } });
await call(client, "createService", {
  spec: {
    annotations: { name: "web" },
    taskTemplate: { container: { command: whoami, healthcheck: HEALTHY } },
    replicated: { replicas: 3 },
    networks: [{ target: "appnet" }],
    endpointSpec: { lbScheduler: "rr", ports: [{ targetPort: 8080, publishedPort: 8080 }] },
  },
});
await call(client, "createService", {
  spec: { annotations: { name: "dr" }, taskTemplate: { container: { command: whoami } }, replicated: { replicas: 2 }, networks: [{ target: "appnet" }], endpointSpec: { mode: "dnsrr" } },
});
await call(client, "createService", { spec: { annotations: { name: "box" }, taskTemplate: { container: { command: ["sleep", "infinity"] } }, replicated: { replicas: 1 }, networks: [{ target: "appnet" }] } });

const healthy = (service: string, n: number) =>
  slow(`${n} ready tasks of ${service}`, async () => {
    const { tasks } = await call(client, "listTasks", { service });
    const up = tasks.filter(isTaskReady);
    return up.length === n && tasks.every((t) => t.desiredState === "running" || ["shutdown", "failed", "complete"].includes(t.status!.state)) ? up : undefined;
  });
const sandboxOf = (t: wire.Task) => listNamespaces().find((ns) => ns.startsWith(lab.prefix) && ns.endsWith(t.id))!;
const web = (await call(client, "inspectService", { service: "web" })).service!;
const appnet = web.spec!.networks[0]!.target;
const vipOn = (s: wire.Service, net: string) => s.endpoint!.virtualIps.find((v) => v.networkId === net)!;
const vip = addrOf(vipOn(web, appnet).addr);
const tasks = await healthy("web", 3);
const [box] = await healthy("box", 1);
await healthy("dr", 2);
check(true, "services running");
const ipOf = (t: wire.Task) => addrOf(t.networks.find((a) => a.networkId === appnet)!.addresses[0]!);
const get = (ns: string, url: string) => {
  const r = spawnSync("ip", ["netns", "exec", ns, "curl", "-s", "--max-time", "5", url], { encoding: "utf8" });
  return r.status === 0 ? /Task: (\S+)/.exec(r.stdout)?.[1] : undefined;
};

// the kernel's IPVS state inside box matches the view: one virtual service per mark, the tasks, weight 1
const saved = () => sh(sandboxOf(box!), "ipvsadm", "-Sn");
const mark = vipOn(web, appnet).fwmark;
await slow("box's IPVS state", () => tasks.every((t) => saved().includes(`-a -f ${mark} -r ${ipOf(t)}:0 -m -w 1`)) || undefined);
// expected from the cluster: each vip-mode service on appnet (web, box; dr is dnsrr), its mark, its tasks
const expected: string[] = [];
for (const svc of (await call(client, "listServices", {})).services) {
  const v = svc.endpoint!.virtualIps.find((x) => x.networkId === appnet);
  if (!v) continue;
  expected.push(`-A -f ${v.fwmark} -s rr`);
  for (const t of (await call(client, "listTasks", { service: svc.spec!.annotations!.name })).tasks) {
    if (t.desiredState === "running" && t.status?.state === "running") expected.push(`-a -f ${v.fwmark} -r ${ipOf(t)}:0 -m -w 1`);
  }
}
const lines = saved().trim().split("\n");
check(JSON.stringify([...lines].sort()) === JSON.stringify(expected.sort()), "ipvsadm -Sn in a sandbox matches the view: a virtual service per VIP mark, its tasks, weight 1", `${saved()} vs ${expected.join(" | ")}`);

// rr: six requests, two per task
await slow("the VIP answers", () => get(sandboxOf(box!), `http://${vip}:8080/`));
const six = Array.from({ length: 6 }, () => get(sandboxOf(box!), `http://${vip}:8080/`));
check(tasks.every((t) => six.filter((x) => x === t.id).length === 2), "rr through the VIP: six requests, two per task", six.join(" "));

// dnsrr: the name resolves to the task IPs, no VIP
const dr = sh(sandboxOf(box!), "dig", "+short", "dr").trim().split("\n").sort();
check(dr.length === 2 && dr.every((a) => a.startsWith(vip.split(".").slice(0, 2).join("."))), "a dnsrr service resolves to its two task IPs", dr.join(" "));

// the routing mesh, from the client, through both nodes
for (const n of lab.nodes) {
  const seen = await slow(`${n.hostname}:8080`, () => get(lab.client, `http://${n.addr}:8080/`));
  check(tasks.some((t) => t.id === seen), `the routing mesh answers through ${n.hostname}`);
}

// health: an unhealthy task leaves IPVS on every sandbox, and gets no request
const sick = tasks[0]!;
sh(sandboxOf(box!), "curl", "-s", "-X", "POST", "-d", "fail", `http://${ipOf(sick)}:8080/health`);
await slow("the sick task out of box's IPVS", () => !saved().includes(`-r ${ipOf(sick)}:0`) || undefined);
const after = Array.from({ length: 6 }, () => get(sandboxOf(box!), `http://${vip}:8080/`));
check(!after.includes(sick.id) && after.every(Boolean), "an unhealthy task gets no request", after.join(" "));
sh(sandboxOf(box!), "curl", "-s", "-X", "POST", "-d", "ok", `http://${ipOf(sick)}:8080/health`);
await slow("the task back in box's IPVS", () => saved().includes(`-r ${ipOf(sick)}:0`) || undefined);
check(true, "healthy again, it is back");

// a scale-down 3 → 1 under a steady request loop through the VIP: no request fails
const loop = spawn("ip", ["netns", "exec", sandboxOf(box!), process.execPath, REQUEST_LOOP, vip, "8080", "30000"], { stdio: ["ignore", "pipe", "inherit"] });
let out = "";
loop.stdout.on("data", (d: Buffer) => (out += d));
const ended = new Promise<void>((resolve) => loop.on("close", () => resolve()));
await slow("the loop to start", () => out.includes("started") || undefined);
await new Promise((r) => setTimeout(r, 3000));
const s = (await call(client, "inspectService", { service: "web" })).service!;
await call(client, "updateService", { service: "web", version: s.version, spec: { ...s.spec!, replicated: { replicas: 1 } } });
const [kept] = await healthy("web", 1);
await slow("web down to one real server in box's IPVS", () => (saved().match(new RegExp(`^-a -f ${mark} `, "gm")) ?? []).length === 1 || undefined);
await new Promise((r) => setTimeout(r, 3000));
loop.kill("SIGTERM");
await ended;
const result = JSON.parse(out.trim().split("\n").pop()!) as { ok: number; failed: number; errors: string[] };
// what IPVS held when a request failed, for whoever reads the failure
if (result.failed > 0) console.log(`box's IPVS after the loop:\n${sh(sandboxOf(box!), "ipvsadm", "-Ln")}\n${sh(sandboxOf(box!), "ipvsadm", "-Lnc")}`);
check(result.failed === 0 && result.ok > 10, `a scale-down 3 → 1 under a request loop: ${result.ok} requests, none failed`, result.errors.join("; "));
check(saved().includes(`-a -f ${mark} -r ${ipOf(kept!)}:0 -m -w 1`), "the one left is the one kept", saved());

// an agent restarted on IPVS changes nothing: a keep-alive connection through the VIP goes on, nothing stale is left
const boxNode = lab.nodes.find((n) => nodes.find((x) => x.id === box!.nodeId)?.description?.hostname === n.hostname)!;
const keepalive = spawn("ip", ["netns", "exec", sandboxOf(box!), process.execPath, KEEPALIVE, vip, "8080"], { stdio: ["ignore", "pipe", "ignore"] });
let said = "";
keepalive.stdout.on("data", (d: Buffer) => (said += d));
const count = () => Number(/ok (\d+)\n$/.exec(said)?.[1] ?? 0);
await slow("the keep-alive connection to carry requests", () => count() >= 3 || undefined);
const ipvsBefore = saved();
killAgent(lab, boxNode.hostname);
startAgent(lab, boxNode.hostname);
await slow("the restarted agent's node ready", async () => (await call(client, "listNodes", {})).nodes.find((n) => n.description?.hostname === boxNode.hostname)?.status?.state === "ready" || undefined);
await new Promise((r) => setTimeout(r, 10_000)); // its first syncs
const carried = count();
await slow("more requests on the same connection", () => count() > carried + 3 || undefined);
keepalive.kill();
check(!said.includes("CLOSED"), "an established connection through the VIP survives an agent restart", said.slice(-200));
check(saved() === ipvsBefore, "the restarted agent left IPVS as it was: nothing stale, nothing rebuilt", `${ipvsBefore} → ${saved()}`);

client.close();
labDown("ipvs");
console.log(`ALL OK in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exit(0);
