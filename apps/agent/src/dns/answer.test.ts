import * as dns from "dns-packet";
import { describe, expect, it } from "vitest";
import { type DnsRecordMaps, type NetworkView, type ViewEndpoint, type ViewService, dnsRecordsFor, emptyView } from "@vipmesh/core";
import { CLASSIC_UDP_SIZE, DEFAULT_DNS_TTL_S, answer, respond, servfail } from "./answer.ts";

const TASK = "k".repeat(24) + "1";

/** One vip service `web` (VIP 10.0.1.2) with one ready task, and a dnsrr service `many` with `n` ready tasks. */
function fixtureRecords(n = 3): DnsRecordMaps {
  const v: NetworkView = emptyView();
  v.networks.set("front", { id: "front", name: "front", subnet: "10.0.0.0/16", gateway: "10.0.0.1", vni: 4096, encrypted: false, ingress: false });
  v.services.set("s1", { id: "s1", name: "web", endpointMode: "vip", ports: [], virtualIps: [{ networkId: "front", addr: "10.0.1.2/16" }], lbScheduler: "" } as ViewService);
  v.services.set("s2", { id: "s2", name: "many", endpointMode: "dnsrr", ports: [], virtualIps: [], lbScheduler: "" } as ViewService);
  const ep = (taskId: string, serviceId: string, addr: string, ready = true): ViewEndpoint => ({
    key: `${taskId}/front`, taskId, serviceId, networkId: "front", addr: `${addr}/16`, mac: "", nodeId: "n2", nodeAddr: "", ready, weight: 1,
  }) as ViewEndpoint;
  v.endpoints.set(`${TASK}/front`, ep(TASK, "s1", "10.0.1.5"));
  for (let i = 0; i < n; i++) {
    const id = `m${String(i).padStart(24, "0")}`;
    v.endpoints.set(`${id}/front`, ep(id, "s2", `10.0.${2 + Math.floor(i / 250)}.${(i % 250) + 1}`));
  }
  return dnsRecordsFor(v, new Set(["front"]));
}

const records = fixtureRecords();

const query = (name: string, type: dns.RecordType = "A", extra: Partial<dns.Packet> = {}): Buffer =>
  dns.encode({ type: "query", id: 4242, flags: dns.RECURSION_DESIRED, questions: [{ type, name, class: "IN" }], ...extra });

const ask = (q: Buffer, tcp = false, r = records) => {
  const buf = answer(q, r, { tcp });
  expect(buf).toBeDefined();
  return dns.decode(buf!) as dns.DecodedPacket & { rcode: string };
};

const addrsOf = (p: dns.Packet) => (p.answers ?? []).map((a) => (a as dns.StringAnswer).data);

describe("answer", () => {
  it("answers a vip service's A with its VIP, echoing id, question and RD, authoritative, short TTL", () => {
    const p = ask(query("web"));
    expect(p.id).toBe(4242);
    expect(p.type).toBe("response");
    expect(p.rcode).toBe("NOERROR");
    expect(p.flag_aa).toBe(true);
    expect(p.flag_rd).toBe(true);
    expect(p.questions).toEqual([{ name: "web", type: "A", class: "IN" }]);
    expect(p.answers).toEqual([expect.objectContaining({ name: "web", type: "A", ttl: DEFAULT_DNS_TTL_S, data: "10.0.1.2" })]);
  });

  it("takes names in any case, with a trailing dot, and honours the TTL option", () => {
    const buf = answer(query("WEB."), records, { tcp: false, ttl: 7 })!;
    const p = dns.decode(buf);
    expect(addrsOf(p)).toEqual(["10.0.1.2"]);
    expect(p.answers?.[0]).toMatchObject({ ttl: 7 });
  });

  it("answers Docker's names ('_', '.') and aliases as the service names they stand for", () => {
    const v: NetworkView = emptyView();
    v.networks.set("front", { id: "front", name: "front", subnet: "10.0.0.0/16", gateway: "10.0.0.1", vni: 4096, encrypted: false, ingress: false });
    v.services.set("s1", {
      ...({ id: "s1", name: "demo_web", endpointMode: "vip", ports: [], virtualIps: [{ networkId: "front", addr: "10.0.1.2/16" }], lbScheduler: "" } as ViewService),
      aliases: [{ networkId: "front", names: ["web", "web.v2"] }],
    });
    v.endpoints.set(`${TASK}/front`, { key: `${TASK}/front`, taskId: TASK, serviceId: "s1", networkId: "front", addr: "10.0.1.5/16", mac: "", nodeId: "n2", nodeAddr: "", ready: true, weight: 1 });
    const r = dnsRecordsFor(v, new Set(["front"]));
    for (const name of ["demo_web", "Demo_Web.", "web", "web.v2"]) {
      const p = ask(query(name), false, r);
      expect([name, p.rcode, addrsOf(p)]).toEqual([name, "NOERROR", ["10.0.1.2"]]);
    }
    for (const name of ["tasks.demo_web", "tasks.web", "tasks.web.v2"]) expect(addrsOf(ask(query(name), false, r))).toEqual(["10.0.1.5"]);
    expect(ask(query("demo_nothing"), false, r).rcode).toBe("NXDOMAIN");
  });

  it("answers tasks.<service> and task names with task addresses", () => {
    expect(addrsOf(ask(query("tasks.web")))).toEqual(["10.0.1.5"]);
    expect(addrsOf(ask(query(`web.${TASK}`)))).toEqual(["10.0.1.5"]);
  });

  it("shuffles dnsrr answers", () => {
    const order = (random: () => number) => addrsOf(dns.decode(answer(query("many"), records, { tcp: false, random })!));
    expect(new Set(order(() => 0.99))).toEqual(new Set(["10.0.2.1", "10.0.2.2", "10.0.2.3"]));
    expect(order(() => 0.99)).toEqual(["10.0.2.1", "10.0.2.2", "10.0.2.3"]); // j = i every step: unchanged
    expect(order(() => 0)).toEqual(["10.0.2.2", "10.0.2.3", "10.0.2.1"]);
  });

  it("answers PTR for a VIP and a task address", () => {
    expect(ask(query("2.1.0.10.in-addr.arpa", "PTR")).answers).toEqual([expect.objectContaining({ type: "PTR", data: "web" })]);
    expect(ask(query("5.1.0.10.in-addr.arpa", "PTR")).answers).toEqual([expect.objectContaining({ type: "PTR", data: `web.${TASK}` })]);
  });

  it("answers AAAA (or any other type) for a known name with NOERROR and no answers", () => {
    for (const type of ["AAAA", "MX", "TXT"] as const) {
      const p = ask(query("web", type));
      expect(p.rcode).toBe("NOERROR");
      expect(p.answers).toEqual([]);
    }
  });

  it("denies unknown cluster names with NXDOMAIN and fails foreign names at once without upstream", () => {
    expect(ask(query("nosuch")).rcode).toBe("NXDOMAIN");
    expect(ask(query("tasks.nosuch")).rcode).toBe("NXDOMAIN");
    expect(ask(query("9.9.0.10.in-addr.arpa", "PTR")).rcode).toBe("NXDOMAIN");
    expect(ask(query("example.com")).rcode).toBe("SERVFAIL");
    expect(ask(query("8.8.8.8.in-addr.arpa", "PTR")).rcode).toBe("SERVFAIL");
  });

  it("asks for forwarding of foreign names when there are upstreams, never of the cluster's", () => {
    expect(respond(query("example.com"), records, { tcp: false, upstream: true })).toEqual({ forward: true });
    const own = respond(query("nosuch"), records, { tcp: false, upstream: true });
    expect(own && "reply" in own && (dns.decode(own.reply) as { rcode?: string }).rcode).toBe("NXDOMAIN");
  });

  it("gives FORMERR to a query whose header reads but body does not, and drops what has no header", () => {
    const good = query("web");
    const cut = good.subarray(0, good.length - 3);
    const p = ask(cut);
    expect(p.rcode).toBe("FORMERR");
    expect(p.id).toBe(4242);
    const twoQuestions = dns.encode({ type: "query", id: 1, questions: [{ type: "A", name: "web" }, { type: "A", name: "web" }] });
    expect(ask(twoQuestions).rcode).toBe("FORMERR");
    const noQuestion = dns.encode({ type: "query", id: 1, questions: [] });
    expect(ask(noQuestion).rcode).toBe("FORMERR");
    expect(answer(Buffer.from([1, 2, 3]), records, { tcp: false })).toBeUndefined();
    expect(answer(Buffer.alloc(0), records, { tcp: false })).toBeUndefined();
    // random garbage with a readable header: some answer or none, never a throw
    for (let i = 0; i < 200; i++) {
      const junk = Buffer.from(Array.from({ length: 12 + (i % 40) }, (_, k) => (i * 31 + k * 17) & 0xff));
      junk[2] = junk[2]! & 0x7f; // a query, not a response
      expect(() => answer(junk, records, { tcp: false })).not.toThrow();
    }
  });

  it("does not answer responses, and refuses other opcodes and classes", () => {
    const resp = dns.encode({ type: "response", id: 1, questions: [{ type: "A", name: "web" }] });
    expect(answer(resp, records, { tcp: false })).toBeUndefined();
    const notify = query("web");
    notify.writeUInt16BE(notify.readUInt16BE(2) | (4 << 11), 2);
    expect(ask(notify).rcode).toBe("NOTIMP");
    expect(ask(dns.encode({ type: "query", id: 1, questions: [{ type: "TXT", name: "version.bind", class: "CH" }] })).rcode).toBe("REFUSED");
  });

  it("truncates an oversize UDP answer with TC, and answers in full over TCP", () => {
    const big = fixtureRecords(100);
    const udp = answer(query("many"), big, { tcp: false })!;
    expect(udp.length).toBeLessThanOrEqual(CLASSIC_UDP_SIZE);
    const u = dns.decode(udp);
    expect(u.flag_tc).toBe(true);
    expect(u.answers!.length).toBeGreaterThan(0);
    expect(u.answers!.length).toBeLessThan(100);
    const tcp = dns.decode(answer(query("many"), big, { tcp: true })!);
    expect(tcp.flag_tc).toBe(false);
    expect(tcp.answers).toHaveLength(100);
  });

  it("honours the EDNS size the asker offers, and echoes OPT", () => {
    const big = fixtureRecords(40); // about 850 bytes: over 512, under the offered (and our 1232) limit
    const edns = query("many", "A", { additionals: [{ type: "OPT", name: ".", udpPayloadSize: 4096, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] });
    const p = dns.decode(answer(edns, big, { tcp: false })!);
    expect(p.flag_tc).toBe(false);
    expect(p.answers).toHaveLength(40);
    expect(p.additionals).toEqual([expect.objectContaining({ type: "OPT" })]);
  });

  it("servfail() answers a query with its question", () => {
    const p = dns.decode(servfail(query("example.com"))!) as dns.DecodedPacket & { rcode: string };
    expect(p.rcode).toBe("SERVFAIL");
    expect(p.id).toBe(4242);
    expect(p.questions?.[0]?.name).toBe("example.com");
  });
});

describe("what respond() tells replays (replay.c)", () => {
  const replyOf = (r: ReturnType<typeof respond>) => {
    expect(r && "reply" in r).toBe(true);
    return r as { reply: Buffer; shuffleAt?: number[]; noReplay?: true };
  };
  /** What replay.c does with a kept reply: the asker's ID, and the addresses at shuffleAt permuted. */
  const replay = (kept: { reply: Buffer; shuffleAt?: number[] }, id: number, order: number[]) => {
    const out = Buffer.from(kept.reply);
    out.writeUInt16BE(id, 0);
    const at = kept.shuffleAt ?? [];
    order.forEach((from, to) => kept.reply.copy(out, at[to]!, at[from]!, at[from]! + 4));
    return out;
  };

  it("a fixed answer may be replayed as it is", () => {
    for (const q of [query("web"), query("nosuch"), query("web", "AAAA"), query("2.1.0.10.in-addr.arpa", "PTR"), query("web", "A", { additionals: [{ type: "OPT", name: ".", udpPayloadSize: 1232 }] as dns.Answer[] })]) {
      const r = replyOf(respond(q, records, { tcp: false }));
      expect(r.noReplay).toBeUndefined();
      expect(r.shuffleAt).toBeUndefined();
    }
  });

  it("a shuffled answer says where its addresses are, so that a replay shuffles them and only them", () => {
    const q = query("tasks.many", "A", { additionals: [{ type: "OPT", name: ".", udpPayloadSize: 1232 }] as dns.Answer[] });
    const r = replyOf(respond(q, records, { tcp: false }));
    const first = dns.decode(r.reply);
    expect(r.shuffleAt).toHaveLength(3);
    expect(r.shuffleAt!.map((o) => [...r.reply.subarray(o, o + 4)].join("."))).toEqual(addrsOf(first));
    const again = dns.decode(replay(r, 99, [2, 0, 1]));
    expect(again.id).toBe(99);
    expect(addrsOf(again)).toEqual([2, 0, 1].map((i) => addrsOf(first)[i]));
    expect({ ...again, id: first.id, answers: [] }).toEqual({ ...first, answers: [] }); // nothing else moved
    expect(again.additionals).toEqual(first.additionals);
    // dnsrr too, and a single address has nothing to shuffle
    expect(replyOf(respond(query("many"), records, { tcp: false })).shuffleAt).toHaveLength(3);
    expect(replyOf(respond(query("tasks.web"), records, { tcp: false })).shuffleAt).toBeUndefined();
  });

  it("junk is answered but never replayed, so a sandbox cannot fill the replays with it", () => {
    const formerr = Buffer.concat([query("web").subarray(0, 12), Buffer.from([0xc0, 0xff])]);
    const notimp = Buffer.from(query("web"));
    notimp.writeUInt16BE((2 << 11) | dns.RECURSION_DESIRED, 2);
    const two = dns.encode({ type: "query", id: 1, questions: [{ type: "A", name: "web" }, { type: "A", name: "many" }] });
    for (const q of [formerr, notimp, two]) expect(replyOf(respond(q, records, { tcp: false })).noReplay).toBe(true);
  });

  it("a truncated shuffled answer is never replayed: which addresses fit is itself the random choice", () => {
    const r = replyOf(respond(query("many"), fixtureRecords(100), { tcp: false }));
    expect(dns.decode(r.reply).flag_tc).toBe(true);
    expect(r.noReplay).toBe(true);
    expect(r.shuffleAt).toBeUndefined();
  });
});

describe("who the embedded DNS answers", () => {
  it("only clients inside the sandbox, over its loopback", async () => {
    const { fromInsideSandbox } = await import("./server.ts");
    expect(fromInsideSandbox("127.0.0.1")).toBe(true);
    expect(fromInsideSandbox("127.0.0.11")).toBe(true);
    expect(fromInsideSandbox("::ffff:127.0.0.1")).toBe(true);
    expect(fromInsideSandbox("10.0.1.5")).toBe(false);
    expect(fromInsideSandbox("192.168.100.12")).toBe(false);
    expect(fromInsideSandbox("::ffff:10.0.1.5")).toBe(false);
    expect(fromInsideSandbox("")).toBe(false);
  });
});
