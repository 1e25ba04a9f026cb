// Published ports that send their tasks a PROXY protocol header (HAProxy's
// spec, v1 text or v2 binary) with the client's address — what swarm users
// asked for, since the mesh's masquerade hides it. The kernel cannot add a
// header, so these ports are the one userspace path of the mesh: the agent
// listens on the port on all the node's addresses, and per connection opens
// one to the service's ingress VIP (routed into the ingress sandbox and
// balanced there like any other), writes the header, then splices the two
// streams. The cost: a copy through this process, and an agent restart ends
// these connections (kernel-forwarded ones survive it).

import { connect, createServer, type Server, type Socket } from "node:net";
import type { ProxyProtocol } from "@vipmesh/core";
import type { PublishedPort } from "./plan.ts";

/** v1: one text line. */
export function proxyHeaderV1(src: string, srcPort: number, dst: string, dstPort: number): Buffer {
  return Buffer.from(`PROXY TCP4 ${src} ${dst} ${srcPort} ${dstPort}\r\n`, "latin1");
}

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** v2: the signature, PROXY command over TCP/IPv4, and 12 bytes of addresses and ports. */
export function proxyHeaderV2(src: string, srcPort: number, dst: string, dstPort: number): Buffer {
  const b = Buffer.alloc(28);
  V2_SIGNATURE.copy(b, 0);
  b[12] = 0x21; // version 2, PROXY
  b[13] = 0x11; // AF_INET, STREAM
  b.writeUInt16BE(12, 14);
  src.split(".").forEach((o, i) => (b[16 + i] = Number(o)));
  dst.split(".").forEach((o, i) => (b[20 + i] = Number(o)));
  b.writeUInt16BE(srcPort, 24);
  b.writeUInt16BE(dstPort, 26);
  return b;
}

/** The header for a client (the forwarder listens on IPv4 only). */
const header = (v: ProxyProtocol, client: Socket): Buffer => {
  const args = [client.remoteAddress ?? "0.0.0.0", client.remotePort ?? 0, client.localAddress ?? "0.0.0.0", client.localPort ?? 0] as const;
  return v === "v1" ? proxyHeaderV1(...args) : proxyHeaderV2(...args);
};

interface Listener {
  server: Server;
  /** What the port forwards to, as last synced (read per connection). */
  port: PublishedPort;
}

export interface ProxyForwarderOptions {
  /** Where a failure on an open port is said (one that cannot be opened fails the sync, which tries again). */
  log?: (line: string) => void;
  /** Address to listen on; default all of the node's. */
  host?: string;
}

export class ProxyProtocolForwarder {
  private readonly listeners = new Map<number, Listener>();

  constructor(private readonly o: ProxyForwarderOptions = {}) {}

  /** Listens on exactly these ports (closing the others: their open connections go on until they end). */
  async sync(ports: readonly PublishedPort[]): Promise<void> {
    const wanted = new Map(ports.filter((p) => p.proxyProtocol).map((p) => [p.port, p]));
    for (const [port, l] of this.listeners) {
      if (!wanted.has(port)) {
        l.server.close();
        this.listeners.delete(port);
      }
    }
    const failed: string[] = [];
    for (const [port, p] of wanted) {
      const l = this.listeners.get(port);
      if (l) l.port = p;
      else await this.listen(p).catch((e: Error) => failed.push(e.message));
    }
    if (failed.length > 0) throw new Error(failed.join("; "));
  }

  close(): void {
    void this.sync([]);
  }

  /** The ports listened on now. */
  get ports(): number[] {
    return [...this.listeners.keys()].sort((a, b) => a - b);
  }

  private listen(p: PublishedPort): Promise<void> {
    // half-open allowed: a client that ends its side still gets the whole answer
    const l: Listener = { server: createServer({ allowHalfOpen: true }, (client) => this.forward(client, l.port)), port: p };
    return new Promise((resolve, reject) => {
      l.server.once("error", (e) => reject(new Error(`published port ${p.port}/tcp of ${p.service} (PROXY protocol): cannot listen: ${e.message}`)));
      l.server.listen({ port: p.port, host: this.o.host ?? "0.0.0.0" }, () => {
        this.listeners.set(p.port, l);
        // later failures (e.g. out of file descriptors on accept) are said, and the port stays open
        l.server.removeAllListeners("error").on("error", (e) => this.o.log?.(`published port ${p.port}/tcp of ${l.port.service} (PROXY protocol): ${e.message}`));
        resolve();
      });
    });
  }

  private forward(client: Socket, p: PublishedPort): void {
    const v = p.proxyProtocol!;
    const upstream = connect({ host: p.to, port: p.targetPort, allowHalfOpen: true });
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    upstream.write(header(v, client));
    client.pipe(upstream);
    upstream.pipe(client);
    // each end is passed on by pipe(); a failure, or one side fully closed, ends both
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  }
}
