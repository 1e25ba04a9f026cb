// IPv4 arithmetic on unsigned 32-bit integers.

/**
 * "a.b.c.d" as a number; undefined unless exactly four decimal octets 0-255
 * without leading zeros. A character loop, not split and regular expressions:
 * the agent parses every address of its view on every change.
 */
export function parseIpv4(text: string): number | undefined {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i === text.length ? 46 /* . */ : text.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || octet > 255 || dots === 4) return undefined;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits > 0 && octet === 0) return undefined; // a leading zero
      octet = octet * 10 + (c - 48);
      if (++digits > 3) return undefined;
    } else {
      return undefined;
    }
  }
  return dots === 4 ? value : undefined;
}

export function formatIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

export interface Cidr {
  /** Network address (host bits zero). */
  base: number;
  prefix: number;
  /** Number of addresses, network and broadcast included. */
  size: number;
}

/** Parses "a.b.c.d/n"; with `strict`, host bits must be zero. */
export function parseCidr(text: string, strict = true): Cidr | undefined {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(text);
  if (!m) return undefined;
  const addr = parseIpv4(m[1]!);
  const prefix = Number(m[2]);
  if (addr === undefined || prefix > 32) return undefined;
  const size = 2 ** (32 - prefix);
  const base = addr - (addr % size);
  if (strict && base !== addr) return undefined;
  return { base, prefix, size };
}

export const formatCidr = (c: Cidr): string => `${formatIpv4(c.base)}/${c.prefix}`;

export const cidrContains = (c: Cidr, addr: number): boolean => addr >= c.base && addr < c.base + c.size;

export const cidrsOverlap = (a: Cidr, b: Cidr): boolean =>
  a.base < b.base + b.size && b.base < a.base + a.size;

/** Strips the prefix length: "10.0.3.2/24" → "10.0.3.2". */
export const addrOf = (cidrAddr: string): string => {
  const slash = cidrAddr.indexOf("/");
  return slash === -1 ? cidrAddr : cidrAddr.slice(0, slash);
};

/** Docker's convention: a locally administered MAC derived from the IPv4 address. */
export function macForIpv4(addr: string): string {
  const n = parseIpv4(addrOf(addr));
  if (n === undefined) throw new Error(`not an IPv4 address: ${addr}`);
  const bytes = [0x02, 0x42, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}
