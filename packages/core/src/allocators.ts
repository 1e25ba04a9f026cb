// Cluster-wide number allocators: VXLAN network identifiers and published ports.

import { exhausted, invalid, precondition } from "./errors.ts";
import type { PortConfig, Protocol, Service } from "./types.ts";

export const VNI_RANGE = { min: 4096, max: 2 ** 24 - 1 } as const;
/** IPVS firewall marks of VIPs: from 256 as libnetwork's; below 2^28, leaving the top bits to others. */
export const FWMARK_RANGE = { min: 256, max: 2 ** 28 - 1 } as const;
export const DYNAMIC_PORT_RANGE = { min: 30000, max: 32767 } as const;
/** VXLAN's port (IANA): every node receives the overlay on it, so the routing mesh cannot take it. */
export const VXLAN_UDP_PORT = 4789;

/** A port of the nodes' own that no service may publish. */
export interface ReservedPort {
  port: number;
  /** Undefined: every protocol. */
  protocol?: Protocol;
  /** Whose it is, for the message: "the manager's API port". */
  what: string;
}

/** SSH: the routing mesh on 22 would take every node's away. */
export const DEFAULT_RESERVED_PORTS = "22";

/** `--reserved-ports 22,2376/tcp`: a port alone is reserved on every protocol. */
export function parseReservedPorts(text: string): ReservedPort[] {
  const what = `reserved for the nodes themselves (--reserved-ports, ${DEFAULT_RESERVED_PORTS} by default)`;
  return text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => {
      const m = /^(\d{1,5})(?:\/(tcp|udp|sctp))?$/.exec(s);
      if (!m || Number(m[1]) < 1 || Number(m[1]) > 65535) {
        throw invalid(`--reserved-ports: "${s}" is not PORT or PORT/PROTOCOL (1-65535; tcp, udp or sctp), e.g. 22,2376/tcp`);
      }
      return { port: Number(m[1]), ...(m[2] ? { protocol: m[2] as Protocol } : {}), what };
    });
}

/**
 * Why service `owner` may not publish `p`, or undefined. A mesh port is taken
 * on every node, so no host-mode port of another service may equal it, and the
 * other way round; host-mode ports of different services may share a number
 * (placement keeps their tasks on different nodes). Another service's mesh port
 * is PublishedPortAllocator's to refuse.
 */
export function publishedPortConflict(owner: string, p: PortConfig, services: readonly Service[], reserved: readonly ReservedPort[]): string | undefined {
  const name = `${p.publishedPort}/${p.protocol}`;
  const r = reserved.find((r) => r.port === p.publishedPort && (r.protocol ?? p.protocol) === p.protocol);
  if (r) return `port ${name} is ${r.what}: publish another port`;
  for (const s of services) {
    if (s.spec.annotations.name === owner) continue;
    const other = s.endpoint.ports.find((o) => o.protocol === p.protocol && o.publishedPort === p.publishedPort && o.publishMode !== p.publishMode);
    if (!other) continue;
    const by = s.spec.annotations.name;
    return other.publishMode === "ingress"
      ? `port ${name} is published through the routing mesh by service ${by}, which takes it on every node: publish another port in host mode`
      : `port ${name} is published in host mode by service ${by}; the routing mesh would take it on every node: ` +
          "publish another port, or this one in host mode too (the tasks then go to different nodes)";
  }
  return undefined;
}

/** Integers in [min, max], handed out serially with wrap-around. */
export class RangeAllocator {
  private readonly used = new Set<number>();
  private cursor: number;

  constructor(
    readonly min: number,
    readonly max: number,
    private readonly what: string,
  ) {
    this.cursor = min - 1;
  }

  next(): number {
    if (this.used.size >= this.max - this.min + 1) {
      throw exhausted(`no free ${this.what} left in ${this.min}-${this.max}`);
    }
    let n = this.cursor;
    do {
      n = n >= this.max ? this.min : n + 1;
    } while (this.used.has(n));
    this.used.add(n);
    this.cursor = n;
    return n;
  }

  take(n: number): void {
    if (!Number.isInteger(n) || n < this.min || n > this.max) throw invalid(`${this.what} ${n} is outside ${this.min}-${this.max}`);
    if (this.used.has(n)) throw precondition(`${this.what} ${n} is already in use`);
    this.used.add(n);
  }

  release(n: number): void {
    this.used.delete(n);
  }

  has(n: number): boolean {
    return this.used.has(n);
  }
}

export class VniAllocator extends RangeAllocator {
  constructor() {
    super(VNI_RANGE.min, VNI_RANGE.max, "VXLAN VNI");
  }
}

/** One mark per VIP (per service per network), cluster-wide: a sandbox on several networks tells its VIPs apart by mark. */
export class FwmarkAllocator extends RangeAllocator {
  constructor() {
    super(FWMARK_RANGE.min, FWMARK_RANGE.max, "firewall mark");
  }
}

/**
 * Ingress-published ports, per protocol (tcp/8080 and udp/8080 can belong to
 * different services, as in swarm). Explicit ports may be any of 1–65535;
 * automatic ones come from the dynamic range 30000–32767.
 */
export class PublishedPortAllocator {
  private readonly owners = new Map<string, string>();
  private readonly dynamic = new Map<Protocol, RangeAllocator>();

  /**
   * Takes `port`, or when `port` is 0 the next free dynamic port that `busy`
   * does not hold (a port of the nodes', another's host-mode port); returns the port.
   */
  allocate(protocol: Protocol, port: number, owner: string, busy: (port: number) => boolean = () => false): number {
    if (port === 0) {
      const range = this.rangeFor(protocol);
      const skipped: number[] = [];
      try {
        for (;;) {
          const p = range.next();
          if (busy(p)) skipped.push(p);
          else if (!this.owners.has(key(protocol, p))) {
            this.owners.set(key(protocol, p), owner);
            return p;
          }
        }
      } finally {
        for (const p of skipped) range.release(p);
      }
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw invalid(`published port ${port} is out of range 1-65535`);
    }
    const holder = this.owners.get(key(protocol, port));
    if (holder !== undefined && holder !== owner) {
      throw precondition(`port ${port}/${protocol} is already published by service ${holder}`);
    }
    this.owners.set(key(protocol, port), owner);
    if (inDynamicRange(port) && !this.rangeFor(protocol).has(port)) this.rangeFor(protocol).take(port);
    return port;
  }

  release(protocol: Protocol, port: number): void {
    this.owners.delete(key(protocol, port));
    if (inDynamicRange(port)) this.rangeFor(protocol).release(port);
  }

  ownerOf(protocol: Protocol, port: number): string | undefined {
    return this.owners.get(key(protocol, port));
  }

  private rangeFor(protocol: Protocol): RangeAllocator {
    let r = this.dynamic.get(protocol);
    if (!r) {
      r = new RangeAllocator(DYNAMIC_PORT_RANGE.min, DYNAMIC_PORT_RANGE.max, `${protocol} published port`);
      this.dynamic.set(protocol, r);
    }
    return r;
  }
}

const key = (protocol: Protocol, port: number) => `${protocol}/${port}`;
const inDynamicRange = (p: number) => p >= DYNAMIC_PORT_RANGE.min && p <= DYNAMIC_PORT_RANGE.max;
