// What each node dataplane can honour of a service's load-balancing settings,
// and the check the manager makes before it stores a spec: a setting that some
// registered node's dataplane cannot honour is refused, naming those nodes,
// rather than ignored there (a VIP balanced differently on one node than on
// the others is a bug nobody sees). With no node registered yet, nftables —
// every agent's dataplane today — is what applies.

import { invalid } from "./errors.ts";
import type { Dataplane, EndpointSpec, LbAffinity, LbSchedulerName, Node } from "./types.ts";

export interface DataplaneCapabilities {
  /** Beside "", its own default, which it always honours. */
  schedulers: readonly LbSchedulerName[];
  affinities: readonly LbAffinity[];
  /** Weights other than 1 (0 = drain is honoured by all). */
  weights: boolean;
}

export const DATAPLANES = ["nftables", "ipvs"] as const satisfies readonly Dataplane[];
export const DEFAULT_DATAPLANE: Dataplane = "nftables";

export const DATAPLANE_CAPABILITIES: Readonly<Record<Dataplane, DataplaneCapabilities>> = {
  // apps/agent/src/lb/nftables/render.ts
  nftables: { schedulers: ["random", "rr"], affinities: ["none", "client-ip"], weights: true },
  // apps/agent/src/lb/ipvs: every IPVS scheduler (rr becomes wrr when weights differ); affinity is its persistence
  ipvs: { schedulers: ["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"], affinities: ["none", "client-ip"], weights: true },
};

/** A registered dataplane name: "" (an agent from before agents said) is nftables. */
export function normalizeDataplane(input: string | undefined): Dataplane {
  if (input === undefined || input === "") return DEFAULT_DATAPLANE;
  if ((DATAPLANES as readonly string[]).includes(input)) return input as Dataplane;
  throw invalid(`dataplane "${input}" is unknown to this manager, which knows ${DATAPLANES.join(", ")}: upgrade the manager, or run the agent with --dataplane nftables`);
}

export const dataplaneOf = (n: Node): Dataplane => n.description.dataplane ?? DEFAULT_DATAPLANE;

type Table = Readonly<Record<Dataplane, DataplaneCapabilities>>;

/** E.g. "schedulers random, rr; affinity client-ip; weights". */
function honoured(c: DataplaneCapabilities): string {
  const affinities = c.affinities.filter((a) => a !== "none");
  return [
    `schedulers ${c.schedulers.join(", ")}`,
    affinities.length > 0 ? `affinity ${affinities.join(", ")}` : "no affinity",
    c.weights ? "weights" : "no weights",
  ].join("; ");
}

/** A setting of the spec, and how to tell whether a dataplane honours it. */
interface Ask {
  what: string;
  honours: (c: DataplaneCapabilities) => boolean;
  /** What to do instead, given the dataplanes in the cluster. */
  fix: (planes: readonly DataplaneCapabilities[]) => string;
}

function asks(e: EndpointSpec): Ask[] {
  const out: Ask[] = [];
  const scheduler = e.lbScheduler;
  if (scheduler !== "") {
    out.push({
      what: `lb scheduler "${scheduler}"`,
      honours: (c) => c.schedulers.includes(scheduler),
      fix: (planes) => {
        const everywhere = planes[0]!.schedulers.filter((s) => planes.every((c) => c.schedulers.includes(s)));
        return everywhere.length > 0
          ? `use ${everywhere.join(" or ")}, which every node honours, or no scheduler for each dataplane's own default`
          : "give no scheduler: each dataplane then uses its own default";
      },
    });
  }
  const affinity = e.lbAffinity;
  if (affinity !== "none") {
    out.push({ what: `lb affinity "${affinity}"`, honours: (c) => c.affinities.includes(affinity), fix: () => "use --lb-affinity none" });
  }
  const weighted = Object.entries(e.lbWeights).filter(([, w]) => w !== 0 && w !== 1);
  if (weighted.length > 0) {
    const pairs = weighted.map(([slot, w]) => `${slot}=${w}`).join(", ");
    out.push({ what: `lb weights ${pairs}`, honours: (c) => c.weights, fix: () => "give weights of 0 or 1 only" });
  }
  return out;
}

const MAX_NAMED = 5;

function names(nodes: readonly Node[]): string {
  const sorted = nodes.map((n) => n.description.hostname).sort();
  const shown = sorted.slice(0, MAX_NAMED).join(", ");
  return sorted.length > MAX_NAMED ? `${shown} and ${sorted.length - MAX_NAMED} more` : shown;
}

/**
 * Throws invalid_argument when some node's dataplane cannot honour the
 * endpoint spec's scheduler, affinity or weights. With `current` (an update),
 * only settings that change are checked: a node that registered since the
 * service was created does not make an unrelated update fail.
 */
export function checkDataplanesHonour(spec: EndpointSpec, nodes: Iterable<Node>, current?: EndpointSpec, table: Table = DATAPLANE_CAPABILITIES): void {
  const unchanged = new Set(current ? asks(current).map((a) => a.what) : []);
  const checked = asks(spec).filter((a) => !unchanged.has(a.what));
  if (checked.length === 0) return; // nothing to honour: the nodes need not be looked at
  const byPlane = new Map<Dataplane, Node[]>();
  for (const n of nodes) {
    const d = dataplaneOf(n);
    const on = byPlane.get(d);
    if (on) on.push(n);
    else byPlane.set(d, [n]);
  }
  const planes = byPlane.size > 0 ? [...byPlane.keys()].sort() : [DEFAULT_DATAPLANE];
  for (const ask of checked) {
    const refusing = planes.filter((d) => !ask.honours(table[d]));
    if (refusing.length === 0) continue;
    const who = refusing.map((d) => {
      const on = byPlane.get(d);
      return on
        ? `node${on.length > 1 ? "s" : ""} ${names(on)} (dataplane ${d}, which honours ${honoured(table[d])})`
        : `dataplane ${d}, which applies while no node has registered (it honours ${honoured(table[d])})`;
    });
    throw invalid(`${ask.what} cannot be honoured by ${who.join("; nor by ")}: ${ask.fix(planes.map((d) => table[d]))}`);
  }
}
