// The embedded DNS: one server in the agent's process answering at
// 127.0.0.11:53 (UDP and TCP) inside every sandbox. Its sockets are made
// inside each sandbox's namespace (replay.c's openSockets) and keep it, so the
// agent reads and answers each sandbox's queries on that sandbox's own sockets.
//
// UDP is served by replay.c's thread, which replays replies computed here
// (answer.ts) to queries it has seen, and hands the rest to this file; TCP
// (asked after a truncated reply, rare) is served here, by Node.
//
// Each sandbox's answers come from the records last given to attach(); a new
// records object drops what replay.c kept, so nothing stale is replayed.
// Foreign names go to the resolvers of the agent's own namespace (its
// /etc/resolv.conf), from a socket in that namespace; without any, they get
// SERVFAIL at once. A sandbox has at most DEFAULT_FORWARDS of them in flight
// (each holds a socket of the agent's until answered or timed out); past that,
// SERVFAIL at once too.

import type { DnsDriver } from "./types.ts";
import dgram from "node:dgram";
import { closeSync, readFileSync } from "node:fs";
import net from "node:net";
import * as dns from "dns-packet";
import type { DnsRecords } from "@vipmesh/core";
import { type AnswerOptions, type DnsResponse, respond, servfail } from "./answer.ts";
import { type ReplayServer, type ReplayStats, replayAddon } from "./replay.ts";

export interface EmbeddedDnsOptions {
  /** Answer TTL in seconds; default DEFAULT_DNS_TTL_S. */
  ttl?: number;
  /** Upstream resolvers: IP addresses (port 53) or `a.b.c.d:port`; default: the nameservers of the agent's /etc/resolv.conf. */
  upstreams?: string[];
  /** Per upstream attempt; default 2000 ms. */
  forwardTimeoutMs?: number;
  /** Default 127.0.0.11. */
  address?: string;
  /** Default 53. */
  port?: number;
  /** Bytes of replies kept for replay per sandbox (so junk queries cannot grow it); past it they are kept afresh. Default 16 MiB. */
  replayBytes?: number;
  /** TCP connections a sandbox may hold open to its DNS; past it the idlest is closed. Default DEFAULT_TCP_CONNECTIONS. */
  tcpConnections?: number;
  /** How long one TCP query may take to arrive whole, however its bytes trickle. Default DEFAULT_TCP_QUERY_MS. */
  tcpQueryMs?: number;
  /** Queries of a sandbox being forwarded upstream at once (UDP and TCP together); past it, SERVFAIL at once. Default DEFAULT_FORWARDS. */
  forwards?: number;
  log?: (line: string) => void;
}

interface Attachment {
  sandbox: string;
  records: DnsRecords;
  /** Its UDP socket's slot in the replay server. */
  slot: number;
  tcp: net.Server;
  /** Open TCP connections, each with when it last brought a whole query (or connected). */
  connections: Map<net.Socket, number>;
  /** Its queries being forwarded upstream now: each holds one socket. */
  forwarding: number;
  /** Set by detach(): nothing more is sent on its sockets. */
  detached: boolean;
}

/** Where `ip netns` keeps the namespaces it names. */
const NETNS_DIR = "/run/netns";
/** About 100 000 replies of a name or two each: a sandbox asking for every one of 30 000 services and their tasks.* fits. */
const DEFAULT_REPLAY_BYTES = 16 * 1024 * 1024;
/** An idle TCP connection is closed after this (RFC 7766 suggests seconds). */
const TCP_IDLE_MS = 10_000;
/** A sandbox's open TCP connections: a task that opens more cannot hold more of the agent's descriptors. */
const DEFAULT_TCP_CONNECTIONS = 32;
/** A query that trickles in slower than this is cut off (slowloris: bytes that keep the idle timer from firing). */
const DEFAULT_TCP_QUERY_MS = 2000;
/** Replies a TCP client leaves unread before its connection is closed. */
const TCP_UNREAD_BYTES = 256 * 1024;
/** A sandbox's queries in flight to the upstream resolvers, one socket each (Docker allows 1024 per container). */
const DEFAULT_FORWARDS = 64;
/** What a command the agent runs holds while it runs: its stdin, stdout and stderr pipes (exec/run.ts). */
const COMMAND_PIPES = 3;

/**
 * The descriptors one task sandbox can make the agent hold at once, which its
 * open-files limit is divided by (docs/ARCHITECTURE.md, "Descriptors per
 * sandbox"): the DNS's UDP socket and TCP listener, its TCP connections and
 * forwards in flight (both capped above), and the pipes of the one command
 * (nft, ipvsadm, conntrack) a sync runs for the sandbox at a time. Nothing
 * else a task does holds one: health checks run with no pipes, the task writes
 * its log itself, and `service logs` readers are opened by admins.
 */
export const SANDBOX_DESCRIPTORS = 2 + DEFAULT_TCP_CONNECTIONS + DEFAULT_FORWARDS + COMMAND_PIPES;

/** The nameservers of a resolv.conf text. */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && net.isIP(m[1]!) !== 0) out.push(m[1]!);
  }
  return out;
}

function systemUpstreams(): string[] {
  try {
    return parseResolvConf(readFileSync("/etc/resolv.conf", "utf8"));
  } catch {
    return [];
  }
}

export class EmbeddedDns implements DnsDriver {
  private readonly attachments = new Map<string, Attachment>();
  private readonly bySlot = new Map<number, Attachment>();
  private readonly upstreams: string[];
  private readonly log: (line: string) => void;
  private readonly udpOptions: AnswerOptions;
  private readonly tcpOptions: AnswerOptions;
  /** Made with the first attachment, closed with the last. */
  private replay: ReplayServer | undefined;

  constructor(private readonly o: EmbeddedDnsOptions = {}) {
    // never ourselves: an agent whose own resolv.conf names 127.0.0.11 would forward in a loop
    this.upstreams = (o.upstreams ?? systemUpstreams()).filter((u) => hostPort(u).host !== (o.address ?? "127.0.0.11"));
    this.log = o.log ?? ((line) => console.error(`dns: ${line}`));
    this.udpOptions = { tcp: false, ttl: o.ttl, upstream: this.upstreams.length > 0 };
    this.tcpOptions = { ...this.udpOptions, tcp: true };
    replayAddon(); // fail at once, with how to fix it, when the addon is not built
  }

  /** Sandboxes being served, sorted. */
  attached(): string[] {
    return [...this.attachments.keys()].sort();
  }

  /** The UDP path's counters, and what it keeps for `sandbox`. */
  stats(sandbox?: string): ReplayStats {
    if (!this.replay) return { hits: 0, misses: 0, dropped: 0 };
    const a = sandbox === undefined ? undefined : this.attachments.get(sandbox);
    return replayAddon().stats(this.replay, a?.slot);
  }

  /**
   * Serves DNS inside `sandbox` (a namespace name, with lo up) from these
   * records on. Attaching an attached sandbox gives it new records (a new
   * object: the same object means the same answers).
   */
  async attach(sandbox: string, records: DnsRecords): Promise<void> {
    const have = this.attachments.get(sandbox);
    if (have) {
      if (have.records !== records) {
        have.records = records;
        replayAddon().forget(this.replay!, have.slot);
      }
      return;
    }
    const native = replayAddon();
    const address = this.o.address ?? "127.0.0.11";
    const port = this.o.port ?? 53;
    const cannot = (e: unknown) => new Error(`embedded DNS in ${sandbox}: cannot bind ${address}:${port}: ${e instanceof Error ? e.message : String(e)}`);
    let fds: [number, number];
    try {
      fds = native.openSockets(`${NETNS_DIR}/${sandbox}`, address, port);
    } catch (e) {
      throw cannot(e);
    }
    this.replay ??= native.createServer((slot, query, from, fromPort) => this.answerUdp(slot, query, from, fromPort), this.o.replayBytes ?? DEFAULT_REPLAY_BYTES);
    let slot: number;
    try {
      slot = native.add(this.replay, fds[0]);
    } catch (e) {
      fds.forEach((fd) => closeSync(fd));
      throw cannot(e);
    }
    const a: Attachment = { sandbox, records, slot, tcp: net.createServer(), connections: new Map(), forwarding: 0, detached: false };
    this.attachments.set(sandbox, a);
    this.bySlot.set(slot, a);
    a.tcp.on("connection", (conn) => this.serveTcp(a, conn));
    // already listening in the kernel (openSockets): connections wait in its backlog until Node takes them
    await new Promise<void>((resolve, reject) => {
      a.tcp.once("error", reject);
      a.tcp.listen({ fd: fds[1] }, () => {
        a.tcp.off("error", reject);
        a.tcp.on("error", (e) => this.log(`${sandbox}: tcp listener: ${e.message}`));
        resolve();
      });
    }).catch(async (e: unknown) => {
      await this.detach(sandbox);
      throw cannot(e);
    });
  }

  /** Stops serving `sandbox` and closes its sockets (which otherwise keep its namespace alive); not attached is fine. */
  async detach(sandbox: string): Promise<void> {
    const a = this.attachments.get(sandbox);
    if (!a) return;
    this.attachments.delete(sandbox);
    this.bySlot.delete(a.slot);
    a.detached = true;
    replayAddon().remove(this.replay!, a.slot);
    if (this.attachments.size === 0) {
      replayAddon().close(this.replay!);
      this.replay = undefined;
    }
    for (const c of a.connections.keys()) c.destroy();
    await new Promise<void>((resolve) => a.tcp.close(() => resolve()));
  }

  async close(): Promise<void> {
    await Promise.all([...this.attachments.keys()].map((s) => this.detach(s)));
  }

  /** A UDP query replay.c has no reply for: answered here, and the reply kept there when it may be replayed. */
  private answerUdp(slot: number, query: Buffer, from: string, port: number): void {
    const a = this.bySlot.get(slot);
    if (!a || a.detached) return;
    // called from replay.c's batches: nothing may throw out of here
    const fail = (e: unknown) => this.log(`${a.sandbox}: udp: ${e instanceof Error ? e.message : String(e)}`);
    const send = (reply: Buffer | undefined, r?: DnsResponse) => {
      if (!reply || a.detached) return;
      const keep = r && "reply" in r && !r.noReplay ? r : undefined;
      try {
        replayAddon().send(this.replay!, slot, from, port, reply, keep ? query : null, keep?.shuffleAt ? Uint16Array.from(keep.shuffleAt) : null);
      } catch (e) {
        fail(e);
      }
    };
    let r: DnsResponse;
    try {
      r = respond(query, a.records, this.udpOptions);
    } catch (e) {
      fail(e);
      return;
    }
    if (!r) return;
    if ("reply" in r) send(r.reply, r);
    else this.forward(a, query, false).then((out) => send(out ?? servfail(query)), fail);
  }

  /** RFC 7766: messages prefixed by a 16-bit length, several per connection, answered in order. */
  private serveTcp(a: Attachment, conn: net.Socket): void {
    if (!fromInsideSandbox(conn.remoteAddress ?? "")) {
      conn.destroy();
      return;
    }
    const victim = a.connections.size >= (this.o.tcpConnections ?? DEFAULT_TCP_CONNECTIONS) ? idlest(a.connections) : undefined;
    if (victim) {
      a.connections.delete(victim); // at once: its close event comes later
      victim.destroy();
    }
    a.connections.set(conn, Date.now());
    conn.setTimeout(TCP_IDLE_MS, () => conn.destroy());
    // the query being read must arrive whole by this, or the connection goes
    let queryDeadline: NodeJS.Timeout | undefined;
    conn.on("error", () => conn.destroy());
    conn.on("close", () => {
      clearTimeout(queryDeadline);
      a.connections.delete(conn);
    });
    let buffered = Buffer.alloc(0);
    let queue = Promise.resolve();
    conn.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const len = buffered.readUInt16BE(0);
        if (buffered.length < 2 + len) break;
        const query = Buffer.from(buffered.subarray(2, 2 + len));
        buffered = buffered.subarray(2 + len);
        clearTimeout(queryDeadline);
        queryDeadline = undefined;
        if (a.connections.has(conn)) a.connections.set(conn, Date.now());
        queue = queue.then(async () => {
          if (conn.destroyed) return; // closed (evicted, cut off): what it still asked is not worked on
          const out = await this.replyTcp(a, query).catch(() => undefined);
          if (!out || conn.destroyed) return;
          if (conn.writableLength > TCP_UNREAD_BYTES) {
            conn.destroy(); // it asks and does not read: nothing more is buffered for it
            return;
          }
          const frame = Buffer.alloc(2 + out.length);
          frame.writeUInt16BE(out.length, 0);
          out.copy(frame, 2);
          conn.write(frame);
        });
      }
      if (buffered.length > 0 && !queryDeadline) queryDeadline = setTimeout(() => conn.destroy(), this.o.tcpQueryMs ?? DEFAULT_TCP_QUERY_MS);
    });
  }

  /** Open TCP connections of `sandbox` (for tests and metrics). */
  tcpConnections(sandbox: string): number {
    return this.attachments.get(sandbox)?.connections.size ?? 0;
  }

  private async replyTcp(a: Attachment, query: Buffer): Promise<Buffer | undefined> {
    const r = respond(query, a.records, this.tcpOptions);
    if (!r || "reply" in r) return r?.reply;
    return (await this.forward(a, query, true)) ?? servfail(query);
  }

  /**
   * The first upstream's reply, over UDP (and over TCP when that was truncated
   * and the asker came by TCP): one socket at a time. Undefined when none
   * answers, or when the sandbox has its DEFAULT_FORWARDS in flight already.
   */
  private async forward(a: Attachment, query: Buffer, tcp: boolean): Promise<Buffer | undefined> {
    if (a.forwarding >= (this.o.forwards ?? DEFAULT_FORWARDS)) return undefined;
    a.forwarding++;
    try {
      const timeoutMs = this.o.forwardTimeoutMs ?? 2000;
      for (const server of this.upstreams) {
        let out = await forwardUdp(query, server, timeoutMs).catch(() => undefined);
        if (out && tcp && (out.readUInt16BE(2) & dns.TRUNCATED_RESPONSE) !== 0) out = await forwardTcp(query, server, timeoutMs).catch(() => out);
        if (out) return out;
      }
      return undefined;
    } finally {
      a.forwarding--;
    }
  }
}

/**
 * Whether a query comes from inside the sandbox: over its loopback, from a
 * 127/8 address (replay.c applies the same rule to UDP). 127.0.0.11 cannot be
 * reached from outside a namespace anyway (the kernel drops loopback
 * destinations arriving on a real interface), unless someone sets
 * route_localnet (kube-proxy does, for its node ports): then this is what
 * keeps the DNS from answering the network.
 */
export const fromInsideSandbox = (address: string): boolean => /^(::ffff:)?127\./.test(address);

/** "10.0.0.53" → port 53; "127.0.0.1:5353" → that port (IPv6 addresses take port 53). */
function hostPort(upstream: string): { host: string; port: number } {
  const m = /^([\d.]+):(\d+)$/.exec(upstream);
  return m ? { host: m[1]!, port: Number(m[2]) } : { host: upstream, port: 53 };
}

function forwardUdp(query: Buffer, upstream: string, timeoutMs: number): Promise<Buffer | undefined> {
  const { host: server, port } = hostPort(upstream);
  return new Promise((resolve) => {
    const sock = dgram.createSocket(net.isIPv6(server) ? "udp6" : "udp4");
    const done = (out: Buffer | undefined) => {
      clearTimeout(timer);
      sock.close();
      resolve(out);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    sock.on("error", () => done(undefined));
    sock.on("message", (msg, peer) => {
      // only the server's reply to this query (same ID) counts
      if (peer.address === server && msg.length >= 12 && msg.readUInt16BE(0) === query.readUInt16BE(0)) done(msg);
    });
    sock.send(query, port, server);
  });
}

function forwardTcp(query: Buffer, upstream: string, timeoutMs: number): Promise<Buffer | undefined> {
  const { host, port } = hostPort(upstream);
  return new Promise((resolve) => {
    const conn = net.connect({ host, port });
    let buffered = Buffer.alloc(0);
    const done = (out: Buffer | undefined) => {
      conn.destroy();
      resolve(out);
    };
    conn.setTimeout(timeoutMs, () => done(undefined));
    conn.on("error", () => done(undefined));
    conn.on("connect", () => {
      const frame = Buffer.alloc(2 + query.length);
      frame.writeUInt16BE(query.length, 0);
      query.copy(frame, 2);
      conn.write(frame);
    });
    conn.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) done(buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
    });
  });
}

/** The connection that brought a whole query least recently. */
function idlest(connections: Map<net.Socket, number>): net.Socket | undefined {
  let out: net.Socket | undefined;
  let oldest = Number.POSITIVE_INFINITY;
  for (const [conn, at] of connections) if (at < oldest) [out, oldest] = [conn, at];
  return out;
}
