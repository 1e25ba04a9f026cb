// The embedded DNS: one server in the agent's process answering at
// 127.0.0.11:53 (UDP and TCP) inside every sandbox. A short-lived helper run
// with `ip netns exec SANDBOX` binds the sockets there and passes them over
// IPC; a socket keeps the namespace it was made in, so the agent reads and
// answers each sandbox's queries on that sandbox's own sockets.
//
// Each sandbox's answers come from its records provider, called per query, so
// the caller keeps them current (e.g. recomputed in its sync). Foreign names go
// to the resolvers of the agent's own namespace (its /etc/resolv.conf), from a
// socket in that namespace; without any, they get SERVFAIL at once.

import { spawn } from "node:child_process";
import dgram from "node:dgram";
import { readFileSync } from "node:fs";
import net from "node:net";
import { fileURLToPath } from "node:url";
import * as dns from "dns-packet";
import type { DnsRecords } from "@vipmesh/core";
import { type AnswerOptions, ReplyCache, servfail } from "./answer.ts";

export type DnsRecordsProvider = () => DnsRecords;

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
  /** How long the bind helper may take; default 10 s. */
  helperTimeoutMs?: number;
  log?: (line: string) => void;
}

interface Attachment {
  sandbox: string;
  provider: DnsRecordsProvider;
  udp: dgram.Socket;
  tcp: net.Server;
  connections: Set<net.Socket>;
  /** Set by detach(): nothing more is sent on its sockets. */
  detached: boolean;
}

/** What answerNow() says of a query whose name is the world's. */
const FORWARD = Symbol("forward");

const HELPER = fileURLToPath(new URL("./bind-helper.mjs", import.meta.url));
/** An idle TCP connection is closed after this (RFC 7766 suggests seconds). */
const TCP_IDLE_MS = 10_000;

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

export class EmbeddedDns {
  private readonly attachments = new Map<string, Attachment>();
  private readonly pending = new Map<string, Promise<void>>();
  private readonly upstreams: string[];
  private readonly log: (line: string) => void;
  private readonly replies = new ReplyCache();
  private readonly udpOptions: AnswerOptions;
  private readonly tcpOptions: AnswerOptions;

  constructor(private readonly o: EmbeddedDnsOptions = {}) {
    // never ourselves: an agent whose own resolv.conf names 127.0.0.11 would forward in a loop
    this.upstreams = (o.upstreams ?? systemUpstreams()).filter((u) => hostPort(u).host !== (o.address ?? "127.0.0.11"));
    this.log = o.log ?? ((line) => console.error(`dns: ${line}`));
    this.udpOptions = { tcp: false, ttl: o.ttl, upstream: this.upstreams.length > 0 };
    this.tcpOptions = { ...this.udpOptions, tcp: true };
  }

  /** Sandboxes being served, sorted. */
  attached(): string[] {
    return [...this.attachments.keys()].sort();
  }

  /**
   * Serves DNS inside `sandbox` (a namespace name, with lo up) from now on.
   * Attaching an attached sandbox only replaces its provider.
   */
  async attach(sandbox: string, provider: DnsRecordsProvider): Promise<void> {
    const have = this.attachments.get(sandbox);
    if (have) {
      have.provider = provider;
      return;
    }
    const inFlight = this.pending.get(sandbox);
    if (inFlight) {
      await inFlight;
      return this.attach(sandbox, provider);
    }
    const p = this.bind(sandbox).then(({ udp, tcp }) => {
      const a: Attachment = { sandbox, provider, udp, tcp, connections: new Set(), detached: false };
      this.serve(a);
      this.attachments.set(sandbox, a);
    });
    this.pending.set(sandbox, p);
    try {
      await p;
    } finally {
      this.pending.delete(sandbox);
    }
  }

  /** Stops serving `sandbox` and closes its sockets (which otherwise keep its namespace alive); not attached is fine. */
  async detach(sandbox: string): Promise<void> {
    await this.pending.get(sandbox)?.catch(() => {});
    const a = this.attachments.get(sandbox);
    if (!a) return;
    this.attachments.delete(sandbox);
    a.detached = true;
    for (const c of a.connections) c.destroy();
    await Promise.all([
      new Promise<void>((resolve) => a.tcp.close(() => resolve())),
      new Promise<void>((resolve) => {
        try {
          a.udp.close(() => resolve());
        } catch {
          resolve(); // already closed
        }
      }),
    ]);
  }

  async close(): Promise<void> {
    await Promise.all([...this.attachments.keys(), ...this.pending.keys()].map((s) => this.detach(s)));
  }

  /** Runs the helper in the sandbox and takes the two sockets it hands over. */
  private bind(sandbox: string): Promise<{ udp: dgram.Socket; tcp: net.Server }> {
    const address = this.o.address ?? "127.0.0.11";
    const port = this.o.port ?? 53;
    return new Promise((resolve, reject) => {
      const child = spawn("ip", ["netns", "exec", sandbox, process.execPath, HELPER, address, String(port)], {
        stdio: ["ignore", "ignore", "pipe", "ipc"],
      });
      let udp: dgram.Socket | undefined;
      let tcp: net.Server | undefined;
      let stderr = "";
      let settled = false;
      const fail = (why: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        udp?.close();
        tcp?.close();
        child.kill("SIGKILL");
        reject(new Error(`embedded DNS in ${sandbox}: cannot bind ${address}:${port}: ${why}`));
      };
      const timer = setTimeout(() => fail(`no sockets within ${this.o.helperTimeoutMs ?? 10_000} ms`), this.o.helperTimeoutMs ?? 10_000);
      child.stderr!.on("data", (b: Buffer) => (stderr += b.toString()));
      child.on("error", (e) => fail(e.message));
      child.on("message", (msg: { kind?: string }, handle: unknown) => {
        if (msg?.kind === "udp" && handle instanceof dgram.Socket) udp = handle;
        else if (msg?.kind === "tcp" && handle instanceof net.Server) tcp = handle;
        if (udp && tcp && !settled) {
          settled = true;
          clearTimeout(timer);
          resolve({ udp, tcp });
        }
      });
      // "close" comes after the IPC channel and stderr are drained, so after any handle the helper sent
      child.on("close", (code, signal) => fail(stderr.trim() || (signal ? `helper killed by ${signal}` : `helper exited with status ${code}`)));
    });
  }

  private records(a: Attachment): DnsRecords | undefined {
    try {
      return a.provider();
    } catch (e) {
      this.log(`${a.sandbox}: records unavailable: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
  }

  /** The reply to one query, or FORWARD when the name is the world's; undefined: no reply. Synchronous: the common case needs no promise. */
  private answerNow(a: Attachment, query: Buffer, tcp: boolean): Buffer | typeof FORWARD | undefined {
    const records = this.records(a);
    if (!records) return servfail(query);
    const r = this.replies.respond(query, records, tcp ? this.tcpOptions : this.udpOptions);
    if (!r) return undefined;
    return "reply" in r ? r.reply : FORWARD;
  }

  /** The reply to one query, forwarding when the name is the world's; undefined: no reply. */
  private async reply(a: Attachment, query: Buffer, tcp: boolean): Promise<Buffer | undefined> {
    const now = this.answerNow(a, query, tcp);
    if (now !== FORWARD) return now;
    return (await this.forward(query, tcp)) ?? servfail(query);
  }

  private serve(a: Attachment): void {
    const fail = (e: unknown) => this.log(`${a.sandbox}: udp: ${e instanceof Error ? e.message : String(e)}`);
    const send = (out: Buffer | undefined, peer: dgram.RemoteInfo) => {
      if (!out || a.detached) return;
      try {
        a.udp.send(out, peer.port, peer.address);
      } catch (e) {
        fail(e); // e.g. closed meanwhile
      }
    };
    a.udp.on("message", (query, peer) => {
      if (!fromInsideSandbox(peer.address)) return;
      let now: ReturnType<typeof this.answerNow>;
      try {
        now = this.answerNow(a, query, false);
      } catch (e) {
        fail(e);
        return;
      }
      if (now !== FORWARD) send(now, peer);
      else this.forward(query, false).then((out) => send(out ?? servfail(query), peer), fail);
    });
    a.udp.on("error", (e) => this.log(`${a.sandbox}: udp socket: ${e.message}`));
    a.tcp.on("error", (e) => this.log(`${a.sandbox}: tcp listener: ${e.message}`));
    a.tcp.on("connection", (conn) => this.serveTcp(a, conn));
  }

  /** RFC 7766: messages prefixed by a 16-bit length, several per connection, answered in order. */
  private serveTcp(a: Attachment, conn: net.Socket): void {
    if (!fromInsideSandbox(conn.remoteAddress ?? "")) {
      conn.destroy();
      return;
    }
    a.connections.add(conn);
    conn.setTimeout(TCP_IDLE_MS, () => conn.destroy());
    conn.on("error", () => conn.destroy());
    conn.on("close", () => a.connections.delete(conn));
    let buffered = Buffer.alloc(0);
    let queue = Promise.resolve();
    conn.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const len = buffered.readUInt16BE(0);
        if (buffered.length < 2 + len) break;
        const query = buffered.subarray(2, 2 + len);
        buffered = buffered.subarray(2 + len);
        queue = queue.then(async () => {
          const out = await this.reply(a, Buffer.from(query), true).catch(() => undefined);
          if (!out || conn.destroyed) return;
          const frame = Buffer.alloc(2 + out.length);
          frame.writeUInt16BE(out.length, 0);
          out.copy(frame, 2);
          conn.write(frame);
        });
      }
    });
  }

  /** The first upstream's reply, over UDP (and over TCP when that was truncated and the asker came by TCP). */
  private async forward(query: Buffer, tcp: boolean): Promise<Buffer | undefined> {
    const timeoutMs = this.o.forwardTimeoutMs ?? 2000;
    for (const server of this.upstreams) {
      let out = await forwardUdp(query, server, timeoutMs).catch(() => undefined);
      if (out && tcp && (out.readUInt16BE(2) & dns.TRUNCATED_RESPONSE) !== 0) out = await forwardTcp(query, server, timeoutMs).catch(() => out);
      if (out) return out;
    }
    return undefined;
  }
}

/**
 * Whether a query comes from inside the sandbox: over its loopback, from a
 * 127/8 address. 127.0.0.11 cannot be reached from outside a namespace
 * anyway (the kernel drops loopback destinations arriving on a real
 * interface), unless someone sets route_localnet (kube-proxy does, for its
 * node ports): then this is what keeps the DNS from answering the network.
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
