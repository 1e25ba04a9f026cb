// The routing mesh on a real 3-node lab whose published service runs on two
// nodes only: every node answers its published ports, from the lab's client
// namespace on the underlay; host mode answers only where a task runs, with
// the client's own address; what is unpublished leaves nothing in any kernel.

import { call, type wire } from "@vipmesh/api";
import { addrOf } from "@vipmesh/core";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { expect, it } from "vitest";
import { listNamespaces } from "../src/lab.ts";
import { waitFor as waitForBase } from "@vipmesh/testing";
import { kernelDescribe } from "@vipmesh/testing/kernel";
import { client, lab, sharedLab } from "./shared-lab.ts";

const name = `m${randomBytes(3).toString("hex")}`;
const UDP_STREAM = fileURLToPath(new URL("./udp-stream.mjs", import.meta.url));

const waitFor = <T>(what: string, check: () => T | Promise<T>, timeoutMs = 30_000) => waitForBase(what, check, timeoutMs);
const sh = (netns: string, ...cmd: string[]) => execFileSync("ip", ["netns", "exec", netns, ...cmd], { timeout: 15_000 }).toString();

/** `curl` from a namespace: its exit status (0, 7 refused, 28 timed out) and body. */
function curl(netns: string, url: string, maxTime = 2): { status: number | null; body: string } {
  const r = spawnSync("ip", ["netns", "exec", netns, "curl", "-s", "--max-time", String(maxTime), url], { encoding: "utf8", timeout: 15_000 });
  return { status: r.status, body: r.stdout };
}

/** One UDP datagram from a namespace and its answer ("" when none comes within a second). */
function udpAsk(netns: string, host: string, port: number): string {
  const script = `const s = require("dgram").createSocket("udp4");
    const t = setTimeout(() => { s.close(); }, 1000);
    s.on("message", (m) => { process.stdout.write(String(m)); clearTimeout(t); s.close(); });
    s.send("hello", ${port}, "${host}");`;
  return sh(netns, process.execPath, "-e", script).trim();
}

async function running(service: string, n: number): Promise<wire.Task[]> {
  return waitFor(`${n} running tasks of ${service}`, async () => {
    const { tasks } = await call(client, "listTasks", { service });
    const up = tasks.filter((t) => t.desiredState === "running" && t.status?.state === "running" && t.status.health === "healthy");
    return up.length === n && tasks.every((t) => t.desiredState === "running" || ["shutdown", "failed", "complete", "orphaned"].includes(t.status!.state)) ? up : undefined;
  });
}

/** Every nft object in a namespace, as `nft list ruleset` prints it. */
const ruleset = (netns: string): string => sh(netns, "nft", "list", "ruleset");

const WHOAMI = ["vipmesh", "whoami", "--port", "8080"];
/** Ready once it answers: no connection meets a task still starting. */
const HEALTHY = { test: ["curl", "-sf", "-o", "/dev/null", "http://127.0.0.1:8080/"], intervalMs: 300, timeoutMs: 2000, retries: 3, startPeriodMs: 0 };

kernelDescribe("the routing mesh on a 3-node lab", () => {
  sharedLab({ name, nodes: 3 });

  let web: wire.Service;
  let tcpPort = 0;
  let udpPort = 0;

  it("answers a published port on every node, one without a task too, reaching every task; UDP as well", async () => {
    await call(client, "createNetwork", { spec: { name: "appnet" } });
    web = (
      await call(client, "createService", {
        spec: {
          annotations: { name: "web" },
          taskTemplate: { container: { command: WHOAMI, healthcheck: HEALTHY }, placement: { constraints: ["node.hostname!=node3"] } },
          replicated: { replicas: 2 },
          networks: [{ target: "appnet" }],
          endpointSpec: { ports: [{ targetPort: 8080 }, { targetPort: 8080, protocol: "udp" }, { targetPort: 8080, protocol: "sctp" }] },
        },
      })
    ).service!;
    // both published ports were assigned from the dynamic range, and inspect shows them
    const inspected = (await call(client, "inspectService", { service: "web" })).service!;
    let sctpPort: number;
    [tcpPort, udpPort, sctpPort] = inspected.endpoint!.ports.map((p) => p.publishedPort) as [number, number, number];
    for (const p of [tcpPort, udpPort, sctpPort]) expect(p >= 30000 && p <= 32767, `port ${p} in 30000-32767`).toBe(true);
    expect(inspected.endpoint!.virtualIps.map((v) => addrOf(v.addr)).some((a) => a.startsWith("10.255."))).toBe(true);

    const tasks = await running("web", 2);
    const taskNodes = new Set(tasks.map((t) => t.nodeId));
    const { nodes } = await call(client, "listNodes", {});
    const node3 = nodes.find((n) => n.description!.hostname === "node3")!;
    expect(taskNodes.has(node3.id)).toBe(false);

    for (const n of lab.nodes) {
      const url = `http://${n.addr}:${tcpPort}/`;
      await waitFor(`${n.hostname}:${tcpPort} answers`, () => curl(lab.client, url).status === 0);
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const r = curl(lab.client, url);
        expect(r.status, `request ${i} to ${n.hostname}`).toBe(0);
        seen.add(/Task: (\S+)/.exec(r.body)![1]!);
        // the mesh replaces the client's address with the ingress sandbox's (as swarm's does)
        expect(r.body).toMatch(/RemoteAddr: 10\.255\.\d+\.\d+:/);
      }
      expect([...seen].sort(), `tasks reached through ${n.hostname}`).toEqual(tasks.map((t) => t.id).sort());

      const answers = new Set<string>();
      for (let i = 0; i < 10; i++) answers.add(await waitFor(`UDP through ${n.hostname}`, () => udpAsk(lab.client, n.addr, udpPort) || undefined));
      expect([...answers].every((a) => tasks.some((t) => a === `task ${t.id}`))).toBe(true);
      // SCTP is steered the same way (this machine's kernel has no SCTP sockets to send any: the rule is read back)
      expect(ruleset(n.netns)).toContain(`sctp . ${sctpPort} : `);
    }
  });

  it("lets a task's ingress interface take only its published target ports, from ingress sandboxes; no task gets through an ingress sandbox", async () => {
    const [task, other] = await running("web", 2);
    const ingressId = web.endpoint!.virtualIps.find((v) => v.addr.startsWith("10.255."))!.networkId;
    const ingressIp = (t: wire.Task) => addrOf(t.networks.find((a) => a.networkId === ingressId)!.addresses[0]!);
    const ip = ingressIp(task!);
    const from = `${lab.nodes[2]!.netns}-ingress`; // node3's ingress sandbox, on the ingress network
    expect(curl(from, `http://${ip}:8080/`).status).toBe(0);
    // a port nothing listens on: without the filter a reset (7) at once; with it, dropped (28)
    expect(curl(from, `http://${ip}:9999/`, 1).status).toBe(28);
    // another task on the ingress network is not an ingress sandbox: dropped, even on the target port
    const sandboxOf = (t: wire.Task) => listNamespaces().find((ns) => ns.startsWith(lab.prefix) && ns.endsWith(t.id))!;
    expect(curl(sandboxOf(other!), `http://${ip}:8080/`, 1).status).toBe(28);
    // and a task that routes through its node's ingress sandbox reaches nothing beyond it (the node, the underlay)
    const sandboxAddr = (await call(client, "listNodes", {})).nodes.find((n) => n.id === other!.nodeId)!.status!.ingressAddr.split("/")[0]!;
    sh(sandboxOf(other!), "ip", "route", "add", "192.168.100.0/24", "via", sandboxAddr);
    expect(curl(sandboxOf(other!), "http://192.168.100.100:1/", 1).status).toBe(28);
  });

  it("publishes a host-mode port only on the node that runs the task, straight to it, with the client's own address", async () => {
    await call(client, "createService", {
      spec: {
        annotations: { name: "hostweb" },
        taskTemplate: { container: { command: WHOAMI, healthcheck: HEALTHY }, placement: { constraints: ["node.hostname==node1"] } },
        replicated: { replicas: 1 },
        endpointSpec: { ports: [{ targetPort: 8080, publishedPort: 9090, publishMode: "host" }] },
      },
    });
    const [task] = await running("hostweb", 1);
    const [node1, node2, node3] = lab.nodes;
    const r = await waitFor("node1:9090 answers", () => {
      const got = curl(lab.client, `http://${node1!.addr}:9090/`);
      return got.status === 0 ? got : undefined;
    });
    expect(r.body).toContain(`Task: ${task!.id}`);
    const clientAddr = sh(lab.client, "ip", "-4", "-o", "addr", "show", "dev", "eth0").match(/inet ([\d.]+)/)![1];
    expect(r.body).toContain(`RemoteAddr: ${clientAddr}:`);
    for (const n of [node2!, node3!]) expect(curl(lab.client, `http://${n.addr}:9090/`).status, n.hostname).toBe(7);
    // its gateway link carries replies only: the task opens nothing through its node (without the filter: a reset, 7)
    const sandbox = listNamespaces().find((ns) => ns.startsWith(lab.prefix) && ns.endsWith(task!.id))!;
    expect(curl(sandbox, `http://${clientAddr}:1/`, 1).status).toBe(28);
  });

  it("sends tasks a PROXY protocol header with the client's own address when the port asks for one", async () => {
    // the task answers with the first line it received: the header
    const firstLine = `require("net").createServer((s) => s.once("data", (d) => s.end(String(d).split("\\r\\n")[0] + "\\n"))).listen(8080)`;
    const pp = (
      await call(client, "createService", {
        spec: {
          annotations: { name: "pp" },
          taskTemplate: { container: { command: [process.execPath, "-e", firstLine] }, placement: { constraints: ["node.hostname==node1"] } },
          replicated: { replicas: 1 },
          endpointSpec: { ports: [{ targetPort: 8080, proxyProtocol: "v1" }] },
        },
      })
    ).service!;
    const port = pp.endpoint!.ports[0]!.publishedPort;
    const clientAddr = sh(lab.client, "ip", "-4", "-o", "addr", "show", "dev", "eth0").match(/inet ([\d.]+)/)![1];
    const node3 = lab.nodes[2]!; // runs no task of pp
    const ask = `const s = require("net").connect(${port}, "${node3.addr}", () => s.write("hello\\r\\n"));
      s.on("data", (d) => process.stdout.write(d)); s.on("error", () => {});`;
    const line = await waitFor("an answer through node3", () => sh(lab.client, process.execPath, "-e", ask).trim() || undefined);
    expect(line).toMatch(new RegExp(`^PROXY TCP4 ${clientAddr} ${node3.addr} \\d+ ${port}$`));
    // the agent serves that port itself: the kernel's published-ports map does not have it
    expect(ruleset(node3.netns)).not.toContain(`tcp . ${port} :`);
    await call(client, "removeService", { service: "pp" });
    await waitFor("the port closed on node3", () => curl(lab.client, `http://${node3.addr}:${port}/`).status === 7);
  });

  it("leaves no nft object of a port once it is unpublished or its service removed, on any node", async () => {
    const current = (await call(client, "inspectService", { service: "web" })).service!;
    // a client that keeps sending from one socket keeps one conntrack flow, NAT-ed to the task
    const stream = spawn("ip", ["netns", "exec", lab.client, process.execPath, UDP_STREAM, lab.nodes[2]!.addr, String(udpPort)], { stdio: ["ignore", "pipe", "inherit"] });
    const answers: string[] = [];
    stream.stdout.on("data", (d: Buffer) => answers.push(...String(d).split("\n").filter(Boolean)));
    try {
      await waitFor("the UDP stream through node3 answered", () => answers.length > 0);
      const natFlows = () => sh(lab.nodes[2]!.netns, "conntrack", "-L", "-p", "udp", "--orig-port-dst", String(udpPort), "--dst-nat").trim();
      expect(natFlows(), "the stream's flow, NAT-ed on node3").not.toBe("");
      const tcpOnly = current.spec!.endpointSpec!.ports.filter((p) => p.protocol === "tcp");
      await call(client, "updateService", { service: "web", version: current.version, spec: { ...current.spec!, endpointSpec: { ...current.spec!.endpointSpec!, ports: tcpOnly } } });
      for (const n of lab.nodes) {
        await waitFor(`${n.hostname} forgets udp/${udpPort}`, () => !ruleset(n.netns).includes(`udp . ${udpPort} :`));
        expect(udpAsk(lab.client, n.addr, udpPort)).toBe("");
        expect(ruleset(n.netns)).toContain(`tcp . ${tcpPort} :`);
      }
      // its flow went with the port: node3 flushed the stream's NAT-ed flow (read back from its conntrack table),
      // so its datagrams reach no task any more, where a flow kept alive by steady sending would be answered for ever
      await waitFor("node3 flushed the stream's NAT-ed flow", () => natFlows() === "");
      await waitFor("the stream unanswered for 500 ms", async () => {
        const heard = answers.length;
        await new Promise((r) => setTimeout(r, 500));
        return answers.length === heard;
      });
    } finally {
      stream.kill("SIGTERM");
    }

    const vip = addrOf(current.endpoint!.virtualIps.find((v) => v.addr.startsWith("10.255."))!.addr);
    await call(client, "removeService", { service: "web" });
    await call(client, "removeService", { service: "hostweb" });
    for (const n of lab.nodes) {
      await waitFor(`${n.hostname} has no element of tcp/${tcpPort} or 9090 left`, () => !new RegExp(`tcp \\. (${tcpPort}|9090) :`).test(ruleset(n.netns)));
      await waitFor(`${n.hostname}'s ingress sandbox forgets the VIP`, () => !ruleset(`${n.netns}-ingress`).includes(vip));
      expect(curl(lab.client, `http://${n.addr}:${tcpPort}/`).status).toBe(7);
    }
  });
});
