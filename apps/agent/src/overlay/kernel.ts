// The node's overlay: per network a bridge (no address: nothing routes
// between networks) and a VXLAN device on it that neither learns nor floods.
// Each remote endpoint gets a static FDB entry (its MAC → its node) and a
// permanent neighbour entry (its IP → its MAC) that the VXLAN device's
// `proxy` uses to answer ARP itself, so no broadcast ever leaves the node.
//
// sync() reads the kernel, computes the difference and writes it in at most
// one `ip` and one `bridge` batch; a converged node costs three reads and no
// write. Only devices named vmbr<N> (bridges) and vmvx<N> (VXLANs) and the
// entries on those VXLANs are vipmesh's; nothing else is touched.

import { TrustCache } from "../exec/trust.ts";
import { canonicalOverlayPlan, checkOverlayPlan } from "../exec/canonical.ts";
import { readLinks, type KernelLink } from "../exec/links.ts";
import { assertBatches, isTolerated, readJson, writeBatch, type BatchLine, type BatchOutcome, type KernelOptions } from "../exec/run.ts";
import { names } from "../exec/names.ts";
import { OVERLAY_MTU, VXLAN_PORT, type OverlayDriver, type OverlayNetworkPlan, type OverlayPlan, type RemoteEndpoint } from "./types.ts";

const OWNED_BRIDGE = /^vmbr(\d+)$/;
const OWNED_VXLAN = /^vmvx(\d+)$/;
/** A bridge's alias names its network, so that read() gives back the whole plan. */
const NETWORK_ALIAS = "vipmesh-network/";
const ZERO_MAC = "00:00:00:00:00:00";
/** Enough for a neighbour delete that found its entry gone (which ends an ip batch, see run.ts) to be followed by the rest. */
const MAX_PASSES = 3;

interface FdbEntry {
  mac: string;
  dst: string;
  permanent: boolean;
}

interface NeighbourEntry {
  ip: string;
  mac: string | undefined;
  permanent: boolean;
}

/** What the overlay is made of in the kernel: links, and the entries on vipmesh's VXLAN devices. */
interface OverlayState {
  links: Map<string, KernelLink>;
  /** Per VXLAN device, its own (`self`) FDB entries by MAC; a MAC can have several destinations. */
  fdb: Map<string, Map<string, FdbEntry[]>>;
  /** Per VXLAN device, its neighbour entries by address. */
  neighbours: Map<string, Map<string, NeighbourEntry>>;
}

interface RawFdb {
  mac: string;
  ifname?: string;
  dst?: string;
  flags?: string[];
  master?: string;
  state?: string;
}

interface RawNeighbour {
  dst: string;
  dev?: string;
  lladdr?: string;
  state?: string[];
}

/** The VNI a vipmesh-owned device stands for, or undefined for anyone else's device. */
function ownedVni(l: KernelLink): number | undefined {
  const m = (l.kind === "bridge" ? OWNED_BRIDGE : l.kind === "vxlan" ? OWNED_VXLAN : undefined)?.exec(l.ifname);
  if (!m) return undefined;
  const vni = Number(m[1]);
  return l.ifname === (l.kind === "bridge" ? names.bridge(vni) : names.vxlan(vni)) ? vni : undefined;
}

export interface KernelOverlayOptions extends KernelOptions {
  /**
   * How long a plan just applied is trusted without reading the kernel back:
   * a sync to that same plan within it returns at once (most syncs change
   * only load balancing, and three kernel reads are most of an unchanged
   * overlay's cost). Drift is repaired by the first sync after it. Default
   * 10 s; 0 reads back every time.
   */
  trustMs?: number;
}

const DEFAULT_TRUST_MS = 10_000;

export class KernelOverlay implements OverlayDriver {
  /** The plan the kernel was last brought to, trusted for trustMs. */
  private readonly trust: TrustCache;

  constructor(private readonly o: KernelOverlayOptions = {}) {
    this.trust = new TrustCache(o.trustMs ?? DEFAULT_TRUST_MS);
  }

  async read(): Promise<OverlayPlan> {
    const state = await this.readState();
    const vnis = new Set<number>();
    for (const l of state.links.values()) {
      const vni = ownedVni(l);
      if (vni !== undefined) vnis.add(vni);
    }
    const networks: OverlayNetworkPlan[] = [];
    let localAddr: string | undefined;
    for (const vni of [...vnis].sort((a, b) => a - b)) {
      const br = state.links.get(names.bridge(vni));
      const vx = state.links.get(names.vxlan(vni));
      localAddr ??= vx?.vxlan?.local;
      const fdb = state.fdb.get(names.vxlan(vni)) ?? new Map<string, FdbEntry[]>();
      const remotes: RemoteEndpoint[] = [];
      const macs = new Set<string>();
      for (const n of state.neighbours.get(names.vxlan(vni))?.values() ?? []) {
        if (!n.mac) continue;
        macs.add(n.mac);
        remotes.push({ ip: n.ip, mac: n.mac, nodeAddr: fdb.get(n.mac)?.[0]?.dst ?? "" });
      }
      // an FDB entry without its neighbour (or the other way round) still shows, half empty
      for (const [mac, entries] of fdb) if (!macs.has(mac) && mac !== ZERO_MAC) remotes.push({ ip: "", mac, nodeAddr: entries[0]?.dst ?? "" });
      const alias = br?.kind === "bridge" ? br.alias : undefined;
      networks.push({
        networkId: alias?.startsWith(NETWORK_ALIAS) ? alias.slice(NETWORK_ALIAS.length) : "",
        vni,
        remotes,
        ...(vx ? { mtu: vx.mtu } : {}), // canonicalOverlayPlan drops it when it is OVERLAY_MTU
      });
    }
    return canonicalOverlayPlan({ localAddr: localAddr ?? "", networks });
  }

  async sync(plan: OverlayPlan): Promise<void> {
    checkOverlayPlan(plan);
    const want = canonicalOverlayPlan(plan);
    await this.trust.ensure("", JSON.stringify(want), () => this.converge(want));
  }

  private async converge(want: OverlayPlan): Promise<void> {
    for (let pass = 1; ; pass++) {
      const { ip, bridge } = this.changes(want, await this.readState());
      if (ip.length === 0 && bridge.length === 0) return;
      // links and neighbours first: the FDB entries go on VXLAN devices the ip batch may create
      const outcomes: BatchOutcome[] = [await writeBatch("ip", ip, this.o.netns, this.o.onWrite)];
      outcomes.push(await writeBatch("bridge", bridge, this.o.netns, this.o.onWrite));
      const raced = outcomes.every((o) => o.failures.length === 0 && (!o.aborted || isTolerated("missing", o.aborted)));
      if (raced && outcomes.some((o) => o.aborted) && pass < MAX_PASSES) continue;
      assertBatches(outcomes);
      return;
    }
  }

  private async readState(): Promise<OverlayState> {
    const netns = this.o.netns;
    const [links, fdb, neighbours] = await Promise.all([
      readLinks(netns),
      readJson<RawFdb[]>("bridge", ["fdb", "show"], { netns }),
      readJson<RawNeighbour[]>("ip", ["neigh", "show", "nud", "all"], { netns }),
    ]);
    const vxlans = new Set([...links.values()].filter((l) => l.kind === "vxlan" && ownedVni(l) !== undefined).map((l) => l.ifname));
    const state: OverlayState = { links, fdb: new Map(), neighbours: new Map() };
    for (const e of fdb) {
      // `master` entries belong to the bridge (learned, or its ports' own addresses): the kernel's, not ours
      if (!e.ifname || !vxlans.has(e.ifname) || e.master || !e.flags?.includes("self")) continue;
      let byMac = state.fdb.get(e.ifname);
      if (!byMac) state.fdb.set(e.ifname, (byMac = new Map()));
      const mac = e.mac.toLowerCase();
      byMac.set(mac, [...(byMac.get(mac) ?? []), { mac, dst: e.dst ?? "", permanent: e.state === "permanent" }]);
    }
    for (const n of neighbours) {
      if (!n.dev || !vxlans.has(n.dev)) continue;
      let byIp = state.neighbours.get(n.dev);
      if (!byIp) state.neighbours.set(n.dev, (byIp = new Map()));
      byIp.set(n.dst, { ip: n.dst, mac: n.lladdr?.toLowerCase(), permanent: n.state?.includes("PERMANENT") ?? false });
    }
    return state;
  }

  /** The lines that turn `state` into `want`: nothing when it already is. */
  private changes(want: OverlayPlan, state: OverlayState): { ip: BatchLine[]; bridge: BatchLine[] } {
    const linkDeletes: BatchLine[] = [];
    const linkWrites: BatchLine[] = [];
    const neighbourWrites: BatchLine[] = [];
    const neighbourDeletes: BatchLine[] = [];
    const fdbDeletes: BatchLine[] = [];
    const fdbWrites: BatchLine[] = [];
    const del = (ifname: string) => linkDeletes.push({ text: `link del dev ${ifname}`, tolerate: "missing" });

    const wanted = new Set(want.networks.flatMap((n) => [names.bridge(n.vni), names.vxlan(n.vni)]));
    // by VNI, each VXLAN before its bridge: the same lines for the same state
    const unwanted = [...state.links.values()].filter((l) => ownedVni(l) !== undefined && !wanted.has(l.ifname));
    unwanted.sort((a, b) => ownedVni(a)! - ownedVni(b)! || (a.kind === "vxlan" ? -1 : 1) - (b.kind === "vxlan" ? -1 : 1));
    for (const l of unwanted) del(l.ifname);

    for (const n of want.networks) {
      const brName = names.bridge(n.vni);
      const vxName = names.vxlan(n.vni);
      const alias = `${NETWORK_ALIAS}${n.networkId}`;

      let br = state.links.get(brName);
      if (br && br.kind !== "bridge") {
        del(brName);
        br = undefined;
      }
      if (!br) {
        linkWrites.push(
          { text: `link add name ${brName} type bridge`, tolerate: "exists" },
          // before it is up, so that it never gets an IPv6 link-local address: the node has no address on any overlay
          { text: `link set dev ${brName} addrgenmode none`, tolerate: "no-ipv6" },
          { text: `link set dev ${brName} alias ${alias} up` },
        );
      } else {
        const fix = [...(br.alias !== alias ? [`alias ${alias}`] : []), ...(br.up ? [] : ["up"])];
        if (fix.length > 0) linkWrites.push({ text: `link set dev ${brName} ${fix.join(" ")}` });
        if (br.addrs.length > 0) {
          linkWrites.push({ text: `link set dev ${brName} addrgenmode none`, tolerate: "no-ipv6" }, { text: `addr flush dev ${brName}` });
        }
      }

      let vx = state.links.get(vxName);
      const info = vx?.vxlan;
      // what `ip link set type vxlan` cannot change on every kernel is made anew
      if (vx && (!info || info.id !== n.vni || info.local !== want.localAddr || info.port !== VXLAN_PORT || info.learning !== false || info.proxy !== true)) {
        del(vxName);
        vx = undefined;
      }
      if (!vx) {
        linkWrites.push(
          {
            text: `link add name ${vxName} mtu ${n.mtu ?? OVERLAY_MTU} type vxlan id ${n.vni} local ${want.localAddr} dstport ${VXLAN_PORT} nolearning proxy`,
            tolerate: "exists",
          },
          { text: `link set dev ${vxName} addrgenmode none`, tolerate: "no-ipv6" },
          { text: `link set dev ${vxName} master ${brName} up` },
        );
      } else {
        const fix = [
          ...(vx.mtu !== (n.mtu ?? OVERLAY_MTU) ? [`mtu ${n.mtu ?? OVERLAY_MTU}`] : []),
          ...(vx.master !== brName ? [`master ${brName}`] : []),
          ...(vx.up ? [] : ["up"]),
        ];
        if (fix.length > 0) linkWrites.push({ text: `link set dev ${vxName} ${fix.join(" ")}` });
        if (vx.addrs.length > 0) {
          linkWrites.push({ text: `link set dev ${vxName} addrgenmode none`, tolerate: "no-ipv6" }, { text: `addr flush dev ${vxName}` });
        }
      }

      // a device made in this sync starts empty; one deleted takes its entries with it
      const fdb = (vx && state.fdb.get(vxName)) || new Map<string, FdbEntry[]>();
      const neighbours = (vx && state.neighbours.get(vxName)) || new Map<string, NeighbourEntry>();
      const macs = new Set<string>();
      const ips = new Set<string>();
      for (const r of n.remotes) {
        macs.add(r.mac);
        ips.add(r.ip);
        const entries = fdb.get(r.mac) ?? [];
        const right = entries.length === 1 && entries[0]!.dst === r.nodeAddr && entries[0]!.permanent;
        if (!right) {
          // replace changes only a MAC's first destination: one with more is cleared first
          if (entries.length > 1) fdbDeletes.push({ text: `fdb del ${r.mac} dev ${vxName} self`, tolerate: "missing" });
          fdbWrites.push({ text: `fdb replace ${r.mac} dev ${vxName} dst ${r.nodeAddr} self permanent` });
        }
        const nb = neighbours.get(r.ip);
        if (!nb || nb.mac !== r.mac || !nb.permanent) {
          neighbourWrites.push({ text: `neigh replace ${r.ip} lladdr ${r.mac} dev ${vxName} nud permanent` });
        }
      }
      // anything else on our VXLAN is stale, including an all-zeros entry, which would flood
      for (const mac of fdb.keys()) if (!macs.has(mac)) fdbDeletes.push({ text: `fdb del ${mac} dev ${vxName} self`, tolerate: "missing" });
      for (const ip of neighbours.keys()) if (!ips.has(ip)) neighbourDeletes.push({ text: `neigh del ${ip} dev ${vxName}`, tolerate: "missing" });
    }

    // neighbour deletes last: a failed one ends the whole ip batch (see run.ts)
    const ip = [...linkDeletes, ...linkWrites, ...neighbourWrites, ...neighbourDeletes];
    return { ip, bridge: [...fdbDeletes, ...fdbWrites] };
  }
}
