// The embedded DNS against the real kernel: one EmbeddedDns in this process
// serves 127.0.0.11:53 inside namespaces of its own, through sockets made
// there; a client run inside each namespace asks over UDP and TCP.

import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import dgram from "node:dgram";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import * as dns from "dns-packet";
import { afterEach, beforeEach, expect, it } from "vitest";
import { type DnsRecords, type NetworkView, type ViewEndpoint, type ViewService, dnsRecordsFor, emptyView } from "@vipmesh/core";
import { waitFor } from "@vipmesh/api";
import { kernelDescribe } from "@vipmesh/testing/kernel";
import { EmbeddedDns } from "../src/dns/server.ts";
import { TestNamespaces, listNamespaces } from "./kernel-netns.ts";

const CLIENT = fileURLToPath(new URL("./dns-client.mjs", import.meta.url));
const HOG = fileURLToPath(new URL("./dns-hog.mjs", import.meta.url));

interface Step {
  proto: "udp" | "tcp";
  query: Buffer;
  waitMs?: number;
}
type Reply = (dns.DecodedPacket & { rcode: string }) | null | { error: string };

/** Runs the client in `netns` (asynchronously: the server answering it lives in this process). */
async function ask(netns: string, steps: Step[]): Promise<Reply[]> {
  const arg = JSON.stringify(steps.map((s) => ({ proto: s.proto, hex: s.query.toString("hex"), waitMs: s.waitMs })));
  const { stdout } = await promisify(execFile)("ip", ["netns", "exec", netns, process.execPath, CLIENT, arg]);
  return (JSON.parse(stdout) as (string | null | { error: string })[]).map((r) =>
    typeof r === "string" ? (dns.decode(Buffer.from(r, "hex")) as dns.DecodedPacket & { rcode: string }) : r,
  );
}

const query = (name: string, type: dns.RecordType = "A"): Buffer =>
  dns.encode({ type: "query", id: 7, flags: dns.RECURSION_DESIRED, questions: [{ type, name, class: "IN" }] });

const withId = (q: Buffer, id: number): Buffer => {
  const out = Buffer.from(q);
  out.writeUInt16BE(id, 0);
  return out;
};

const packet = (r: Reply | undefined): dns.DecodedPacket & { rcode: string } => {
  if (!r || "error" in r) throw new Error(`expected a DNS reply, got ${JSON.stringify(r)}`);
  return r;
};
const addrs = (r: Reply | undefined) => (packet(r).answers ?? []).map((a) => (a as dns.StringAnswer).data).sort();

/** `web` (vip 10.0.1.2, one task) and `many` (dnsrr, `n` tasks) on network `front`; `secret` on `back`, also named `demo_vault` and `vault.v2` there. */
function records(networks: string[], n = 3): DnsRecords {
  const v: NetworkView = emptyView();
  v.networks.set("front", { id: "front", name: "front", subnet: "10.0.0.0/16", gateway: "10.0.0.1", vni: 4096, encrypted: false, ingress: false });
  v.networks.set("back", { id: "back", name: "back", subnet: "10.1.0.0/16", gateway: "10.1.0.1", vni: 4097, encrypted: false, ingress: false });
  v.services.set("s1", { id: "s1", name: "web", endpointMode: "vip", ports: [], virtualIps: [{ networkId: "front", addr: "10.0.1.2/16" }], lbScheduler: "" } as ViewService);
  v.services.set("s2", { id: "s2", name: "many", endpointMode: "dnsrr", ports: [], virtualIps: [], lbScheduler: "" } as ViewService);
  v.services.set("s3", {
    ...({ id: "s3", name: "secret", endpointMode: "vip", ports: [], virtualIps: [{ networkId: "back", addr: "10.1.0.2/16" }], lbScheduler: "" } as ViewService),
    aliases: [{ networkId: "back", names: ["demo_vault", "vault.v2"] }],
  });
  const ep = (taskId: string, serviceId: string, networkId: string, addr: string): ViewEndpoint => ({
    key: `${taskId}/${networkId}`, taskId, serviceId, networkId, addr, mac: "", nodeId: "n1", nodeAddr: "", ready: true, weight: 1,
  }) as ViewEndpoint;
  const all = [ep("t-web", "s1", "front", "10.0.1.5/16"), ep("t-secret", "s3", "back", "10.1.0.5/16")];
  for (let i = 0; i < n; i++) all.push(ep(`t-many-${i}`, "s2", "front", `10.0.${2 + Math.floor(i / 250)}.${(i % 250) + 1}/16`));
  for (const e of all) v.endpoints.set(e.key, e);
  return dnsRecordsFor(v, new Set(networks));
}

kernelDescribe("embedded DNS in namespaces", () => {
  let ns: TestNamespaces;
  let server: EmbeddedDns;

  beforeEach(() => {
    ns = new TestNamespaces();
    server = new EmbeddedDns({ upstreams: [], log: () => {} });
  });

  afterEach(async () => {
    await server.close();
    for (const name of listNamespaces()) if (name.startsWith(ns.prefix)) rmSync(`/etc/netns/${name}`, { recursive: true, force: true });
    ns.cleanup();
    expect(listNamespaces().filter((n) => n.startsWith(ns.prefix))).toEqual([]);
  });

  it("answers per sandbox over UDP, keeps serving after malformed packets, completes over TCP, and stops on detach", async () => {
    const a = ns.add("dns-a");
    const b = ns.add("dns-b");
    await server.attach(a, records(["front"], 100));
    await server.attach(b, records(["back"]));
    expect(server.attached()).toEqual([a, b].sort());

    const truncated = query("web").subarray(0, 20);
    const [web, tasks, many, secret, nosuch, world, aaaa, ptr, junk, formerr, after, manyTcp] = await ask(a, [
      { proto: "udp", query: query("web") },
      { proto: "udp", query: query("TASKS.web.") },
      { proto: "udp", query: query("many") },
      { proto: "udp", query: query("secret") },
      { proto: "udp", query: query("nosuch") },
      { proto: "udp", query: query("example.com") },
      { proto: "udp", query: query("web", "AAAA") },
      { proto: "udp", query: query("2.1.0.10.in-addr.arpa", "PTR") },
      { proto: "udp", query: Buffer.from([1, 2, 3]), waitMs: 300 }, // no header: dropped, so no reply is awaited long
      { proto: "udp", query: truncated },
      { proto: "udp", query: query("web") },
      { proto: "tcp", query: query("many") },
    ]);
    expect(addrs(web)).toEqual(["10.0.1.2"]);
    expect(packet(web).id).toBe(7);
    expect(addrs(tasks)).toEqual(["10.0.1.5"]);
    expect(packet(many).flag_tc).toBe(true); // 100 addresses do not fit in 512 bytes
    expect(packet(secret).rcode).toBe("NXDOMAIN"); // on another network: isolation
    expect(packet(nosuch).rcode).toBe("NXDOMAIN");
    expect(packet(world).rcode).toBe("SERVFAIL"); // no upstream resolvers
    expect(packet(aaaa)).toMatchObject({ rcode: "NOERROR", answers: [] });
    expect(packet(ptr).answers).toEqual([expect.objectContaining({ type: "PTR", data: "web" })]);
    expect(junk).toBeNull();
    expect(packet(formerr).rcode).toBe("FORMERR");
    expect(addrs(after)).toEqual(["10.0.1.2"]);
    expect(packet(manyTcp).flag_tc).toBe(false);
    expect(addrs(manyTcp)).toHaveLength(100);

    // the other sandbox sees its own networks only
    const [bSecret, bWeb, bAlias, bDotted, bTasks] = await ask(b, [
      { proto: "udp", query: query("secret") },
      { proto: "tcp", query: query("web") },
      { proto: "udp", query: query("demo_vault") },
      { proto: "tcp", query: query("Vault.V2") },
      { proto: "udp", query: query("tasks.demo_vault") },
    ]);
    expect(addrs(bSecret)).toEqual(["10.1.0.2"]);
    expect(packet(bWeb).rcode).toBe("NXDOMAIN");
    expect([addrs(bAlias), addrs(bDotted), addrs(bTasks)]).toEqual([["10.1.0.2"], ["10.1.0.2"], ["10.1.0.5"]]);
    // an alias is its network's: not answered in a
    expect(packet((await ask(a, [{ proto: "udp", query: query("demo_vault") }]))[0]).rcode).toBe("NXDOMAIN");

    // the system resolver, with the resolv.conf the agent is to write for each sandbox
    mkdirSync(`/etc/netns/${b}`, { recursive: true });
    writeFileSync(`/etc/netns/${b}/resolv.conf`, "nameserver 127.0.0.11\noptions ndots:0\n");
    const { stdout } = await promisify(execFile)("ip", ["netns", "exec", b, "getent", "hosts", "secret"]);
    expect(stdout.trim().split(/\s+/)).toEqual(["10.1.0.2", "secret"]);
    const viaAlias = await promisify(execFile)("ip", ["netns", "exec", b, "getent", "hosts", "demo_vault"]);
    expect(viaAlias.stdout.trim().split(/\s+/)).toEqual(["10.1.0.2", "demo_vault"]);

    // answers follow the records at once: "secret" was NXDOMAIN above, and that reply is not replayed
    await server.attach(a, records(["front", "back"]));
    expect(addrs((await ask(a, [{ proto: "udp", query: query("secret") }]))[0])).toEqual(["10.1.0.2"]);

    // after detach nothing listens in a, and b still answers
    await server.detach(a);
    expect(server.attached()).toEqual([b]);
    expect(await ask(a, [{ proto: "tcp", query: query("web") }])).toEqual([{ error: "ECONNREFUSED" }]);
    expect(addrs((await ask(b, [{ proto: "udp", query: query("secret") }]))[0])).toEqual(["10.1.0.2"]);
  });

  it("replays its answers to repeated queries with each asker's ID, shuffling dnsrr addresses, until the records change", async () => {
    const a = ns.add("dns-replay");
    await server.attach(a, records(["front"], 3));
    const steps: Step[] = [];
    for (let id = 1; id <= 10; id++) steps.push({ proto: "udp", query: withId(query("web"), id) });
    for (let id = 1; id <= 40; id++) steps.push({ proto: "udp", query: withId(query("tasks.many"), id) });
    const replies = (await ask(a, steps)).map(packet);
    expect(replies.map((r) => r.id)).toEqual([...Array(10).keys(), ...Array(40).keys()].map((i) => i + 1));
    expect(new Set(replies.slice(0, 10).map((r) => addrs(r).join()))).toEqual(new Set(["10.0.1.2"]));
    expect(new Set(replies.slice(10).map((r) => addrs(r).join()))).toEqual(new Set(["10.0.2.1,10.0.2.2,10.0.2.3"]));
    const orders = new Set(replies.slice(10).map((r) => (r.answers ?? []).map((x) => (x as dns.StringAnswer).data).join()));
    expect(orders.size).toBeGreaterThan(1); // 40 replays of 3 addresses in one order: (1/6)^39
    // two queries answered here, 48 replayed by the UDP thread, which keeps two replies
    const two = server.stats(a);
    expect(two).toMatchObject({ misses: 2, hits: 48, dropped: 0, kept: 2 });

    // new records: nothing kept is replayed
    await server.attach(a, records(["front"], 1));
    expect(server.stats(a)).toMatchObject({ kept: 0, keptBytes: 0 });
    expect(addrs((await ask(a, [{ proto: "udp", query: query("tasks.many") }]))[0])).toEqual(["10.0.2.1"]);

    // what a sandbox makes it keep is bounded: with room for just those two replies, a third starts afresh
    await server.close();
    server = new EmbeddedDns({ upstreams: [], log: () => {}, replayBytes: two.keptBytes });
    await server.attach(a, records(["front"], 3));
    await ask(a, [{ proto: "udp", query: query("web") }, { proto: "udp", query: query("tasks.many") }]);
    expect(server.stats(a)).toMatchObject({ kept: 2, keptBytes: two.keptBytes });
    const [nosuch, web] = await ask(a, [{ proto: "udp", query: query("nosuch") }, { proto: "udp", query: query("web") }]);
    expect(packet(nosuch).rcode).toBe("NXDOMAIN");
    expect(addrs(web)).toEqual(["10.0.1.2"]);
    expect(server.stats(a)).toMatchObject({ misses: 4, hits: 0, kept: 2 }); // nosuch, then web again
    expect(server.stats(a).keptBytes).toBeLessThanOrEqual(two.keptBytes!);
  });

  it("bounds what a task can hold over TCP: a few connections per sandbox (the idlest goes), and a query that trickles is cut off", async () => {
    await server.close();
    server = new EmbeddedDns({ upstreams: [], log: () => {}, tcpConnections: 4, tcpQueryMs: 300 });
    const a = ns.add("dns-hog");
    const b = ns.add("dns-neighbour");
    await server.attach(a, records(["front"]));
    await server.attach(b, records(["front"]));
    /** Starts the hog; `holding(k)` once it holds k connections, `done()` lets them go and gives its count. */
    const hog = (netns: string, args: string[]) => {
      const child = spawn("ip", ["netns", "exec", netns, process.execPath, HOG, ...args], { stdio: ["pipe", "pipe", "inherit"] });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d));
      const lines = () => out.split("\n");
      return {
        holding: (k: number) => waitFor(`the hog holding ${k}`, () => lines().includes("ready") && lines().filter((l) => l.startsWith("open ")).at(-1) === `open ${k}`, 10_000),
        done: async () => {
          child.stdin.end();
          await once(child, "exit");
          return JSON.parse(lines().at(-2)!) as { opened: number; open: number };
        },
      };
    };

    // 12 idle connections: the server keeps 4 (the newest), closing the others
    const idle = hog(a, ["12"]);
    await idle.holding(4);
    expect(server.tcpConnections(a)).toBe(4);
    const [web] = await ask(a, [{ proto: "tcp", query: query("web") }]); // a fresh one is served all the same
    expect(addrs(web)).toEqual(["10.0.1.2"]);
    await idle.holding(3); // it took the place of one more
    expect(await idle.done()).toEqual({ opened: 12, open: 3 });

    // bytes that keep the idle timer from firing but never make a query: each connection goes at the query deadline
    const trickle = hog(a, ["3", "trickle"]);
    await trickle.holding(0);
    expect(await trickle.done()).toEqual({ opened: 3, open: 0 });
    // and the neighbour never noticed
    expect(addrs((await ask(b, [{ proto: "tcp", query: query("web") }]))[0])).toEqual(["10.0.1.2"]);
    await waitFor("the hog's connections closed", () => server.tcpConnections(a) === 0, 10_000);
  });

  it("forwards at most a few queries of a sandbox at once (a socket each): past that, SERVFAIL at once", async () => {
    // an upstream that never answers: each forward holds its socket until it times out
    const upstream = dgram.createSocket("udp4");
    const asked: string[] = [];
    upstream.on("message", (msg) => asked.push(dns.decode(msg).questions?.[0]?.name ?? ""));
    await new Promise<void>((resolve) => upstream.bind(0, "127.0.0.1", resolve));
    try {
      await server.close();
      server = new EmbeddedDns({ upstreams: [`127.0.0.1:${upstream.address().port}`], forwards: 3, forwardTimeoutMs: 3000, log: () => {} });
      const a = ns.add("dns-fwd-cap");
      await server.attach(a, records(["front"]));
      // 8 foreign names at once, each from a socket of its own: each reply's rcode and how long it took
      const script = `
        const dgram = require("node:dgram"); const t0 = Date.now(); const out = [];
        for (let i = 0; i < 8; i++) {
          const s = dgram.createSocket("udp4");
          s.on("message", (m) => { out.push({ rcode: m[3] & 15, ms: Date.now() - t0 }); s.close(); if (out.length === 8) { console.log(JSON.stringify(out)); process.exit(0); } });
          s.send(Buffer.from(${JSON.stringify([...query("x.example.com")])}).fill(i + 1, 0, 2), 53, "127.0.0.11");
        }
        setTimeout(() => { console.log(JSON.stringify(out)); process.exit(1); }, 10000);`;
      const replies = JSON.parse((await promisify(execFile)("ip", ["netns", "exec", a, process.execPath, "-e", script])).stdout) as { rcode: number; ms: number }[];
      expect(replies.map((r) => r.rcode)).toEqual(Array(8).fill(2)); // SERVFAIL, every one
      expect(asked).toHaveLength(3); // the other 5 never left the node…
      expect(replies.filter((r) => r.ms < 1500)).toHaveLength(5); // …and were answered at once; the 3 at their timeout
      // the timed-out forwards gave their places back
      expect(packet((await ask(a, [{ proto: "tcp", query: query("y.example.com") }]))[0]).rcode).toBe("SERVFAIL");
      expect(asked).toHaveLength(4);
    } finally {
      upstream.close();
    }
  });

  it("fails attach clearly when the sandbox does not exist", async () => {
    await expect(server.attach(ns.name("missing"), records(["front"]))).rejects.toThrow(/cannot bind 127\.0\.0\.11:53/);
    expect(server.attached()).toEqual([]);
  });

  it("forwards foreign names to the agent's upstream, from the agent's own namespace", async () => {
    // a fake upstream on the test process's loopback: only the agent's namespace can reach it
    const upstream = dgram.createSocket("udp4");
    const asked: string[] = [];
    upstream.on("message", (msg, peer) => {
      const q = dns.decode(msg);
      asked.push(q.questions?.[0]?.name ?? "");
      const reply = dns.encode({ type: "response", id: q.id, flags: dns.RECURSION_AVAILABLE, questions: q.questions, answers: [{ type: "A", name: q.questions![0]!.name, ttl: 60, data: "192.0.2.7" }] });
      upstream.send(reply, peer.port, peer.address);
    });
    await new Promise<void>((resolve) => upstream.bind(0, "127.0.0.1", resolve));
    try {
      await server.close();
      server = new EmbeddedDns({ upstreams: [`127.0.0.1:${upstream.address().port}`], log: () => {} });
      const a = ns.add("dns-fwd");
      await server.attach(a, records(["front"]));
      const [world, own, nosuch, worldAgain] = await ask(a, [
        { proto: "udp", query: query("example.com") },
        { proto: "tcp", query: query("web") },
        { proto: "udp", query: query("nosuch") },
        { proto: "udp", query: withId(query("example.com"), 8) },
      ]);
      expect(addrs(world)).toEqual(["192.0.2.7"]);
      expect(packet(world).id).toBe(7);
      expect(addrs(own)).toEqual(["10.0.1.2"]);
      expect(packet(nosuch).rcode).toBe("NXDOMAIN"); // the cluster's own names never leave the node
      expect(packet(worldAgain).id).toBe(8);
      expect(asked).toEqual(["example.com", "example.com"]); // the world's answers are the world's to cache: never replayed
    } finally {
      upstream.close();
    }
  });
});
