// Links as `ip -j -d addr show` reports them, reduced to what the drivers compare.

import { readJson } from "./run.ts";

export interface KernelAddress {
  family: string;
  local: string;
  prefixlen: number;
}

export interface KernelLink {
  ifindex: number;
  ifname: string;
  /** linkinfo.info_kind: bridge, vxlan, veth…; undefined for lo and the like. */
  kind: string | undefined;
  /** Administratively up. */
  up: boolean;
  mtu: number;
  mac: string;
  master: string | undefined;
  alias: string | undefined;
  /** For a veth: the peer's ifindex (in the peer's namespace). */
  peerIndex: number | undefined;
  vxlan: { id: number; local: string | undefined; port: number | undefined; learning: boolean | undefined; proxy: boolean | undefined } | undefined;
  addrs: KernelAddress[];
}

interface RawLink {
  ifindex: number;
  ifname: string;
  flags?: string[];
  mtu?: number;
  address?: string;
  master?: string;
  ifalias?: string;
  link_index?: number;
  linkinfo?: { info_kind?: string; info_data?: { id?: number; local?: string; port?: number; learning?: boolean; proxy?: boolean } };
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

export function linkOf(raw: RawLink): KernelLink {
  const kind = raw.linkinfo?.info_kind;
  const data = raw.linkinfo?.info_data;
  return {
    ifindex: raw.ifindex,
    ifname: raw.ifname,
    kind,
    up: raw.flags?.includes("UP") ?? false,
    mtu: raw.mtu ?? 0,
    mac: (raw.address ?? "").toLowerCase(),
    master: raw.master,
    alias: raw.ifalias,
    peerIndex: raw.link_index,
    vxlan: kind === "vxlan" ? { id: data?.id ?? -1, local: data?.local, port: data?.port, learning: data?.learning, proxy: data?.proxy } : undefined,
    addrs: (raw.addr_info ?? []).filter((a) => a.family && a.local).map((a) => ({ family: a.family!, local: a.local!, prefixlen: a.prefixlen ?? 0 })),
  };
}

/** Every link of a namespace (undefined: the current one), by name, with its addresses. */
export async function readLinks(netns: string | undefined): Promise<Map<string, KernelLink>> {
  const raw = await readJson<RawLink[]>("ip", ["-d", "addr", "show"], { netns });
  return new Map(raw.map((r) => [r.ifname, linkOf(r)]));
}

/** "10.0.3.5/24" forms of a link's IPv4 addresses. */
export const ipv4Cidrs = (l: KernelLink): string[] => l.addrs.filter((a) => a.family === "inet").map((a) => `${a.local}/${a.prefixlen}`);
