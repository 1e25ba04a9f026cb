// IPv4 arithmetic on unsigned 32-bit integers.

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((p) => OCTET.test(p))) return undefined;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
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
export const addrOf = (cidrAddr: string): string => cidrAddr.split("/")[0]!;

/** Docker's convention: a locally administered MAC derived from the IPv4 address. */
export function macForIpv4(addr: string): string {
  const n = parseIpv4(addrOf(addr));
  if (n === undefined) throw new Error(`not an IPv4 address: ${addr}`);
  const bytes = [0x02, 0x42, n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return bytes.map((b) => b.toString(16).padStart(2, "0")).join(":");
}
