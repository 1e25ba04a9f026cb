// Cluster-wide number allocators: VXLAN network identifiers and published ports.

import { exhausted, invalid, precondition } from "./errors.ts";
import type { Protocol } from "./types.ts";

export const VNI_RANGE = { min: 4096, max: 2 ** 24 - 1 } as const;
/** IPVS firewall marks of VIPs: from 256 as libnetwork's; below 2^28, leaving the top bits to others. */
export const FWMARK_RANGE = { min: 256, max: 2 ** 28 - 1 } as const;
export const DYNAMIC_PORT_RANGE = { min: 30000, max: 32767 } as const;
/** VXLAN's port (IANA): every node receives the overlay on it, so the routing mesh cannot take it. */
export const VXLAN_UDP_PORT = 4789;

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

  /** Takes `port`, or the next free dynamic port when `port` is 0; returns the port. */
  allocate(protocol: Protocol, port: number, owner: string): number {
    if (port === 0) {
      const range = this.rangeFor(protocol);
      for (;;) {
        const p = range.next();
        if (!this.owners.has(key(protocol, p))) {
          this.owners.set(key(protocol, p), owner);
          return p;
        }
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
