// UDP flows to VIPs in a sandbox's conntrack table, and their removal when the
// task they were balanced to is no longer a backend of that VIP.
//
// Why: a UDP "connection" is a conntrack entry that keeps its NAT for as long as
// datagrams keep coming (30 s, 120 s once assured), so a client that sends
// steadily from one socket (DNS, syslog, statsd, game servers) would keep
// sending to a task that turned unhealthy, drained or died — kube-proxy's
// long-standing bug (kubernetes#19029 and its successors). TCP entries are left
// alone: an established connection to a draining task is meant to finish.
//
// `conntrack` (conntrack-tools) is run inside the sandbox, where the DNAT
// happened and where its entries live.

import type { LbPlan } from "@vipmesh/core";
import { runIn } from "../exec/run.ts";

/** One UDP conntrack entry, as far as balancing goes: where the client sent it, and who answers. */
export interface UdpFlow {
  /** The original destination: a VIP when the flow was balanced. */
  origDst: string;
  /** The reply source: the task the VIP was DNAT-ed to. */
  replySrc: string;
}

/** The UDP flows of `conntrack -L -p udp` output (one entry a line, original tuple first, then the reply tuple). */
export function parseUdpFlows(text: string): UdpFlow[] {
  const out: UdpFlow[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("udp")) continue;
    const srcs = [...line.matchAll(/\bsrc=(\S+)/g)].map((m) => m[1]!);
    const dst = /\bdst=(\S+)/.exec(line)?.[1];
    if (dst && srcs.length >= 2) out.push({ origDst: dst, replySrc: srcs[1]! });
  }
  return out;
}

/**
 * The (VIP, task) pairs whose flows must go: flows to a VIP of `plan` answered
 * by an address that is no longer one of its backends, and flows to a VIP that
 * `previous` had and `plan` no longer has. Flows that were not balanced (the
 * reply comes from where they were sent) are never touched. Sorted, no repeats.
 */
export function staleUdpFlows(flows: readonly UdpFlow[], plan: LbPlan, previous?: LbPlan): UdpFlow[] {
  const backends = new Map<string, Set<string>>();
  for (const s of plan.services) backends.set(s.vip, new Set(s.backends.map((b) => b.ip)));
  const gone = new Set((previous?.services ?? []).map((s) => s.vip).filter((vip) => !backends.has(vip)));
  const stale = new Map<string, UdpFlow>();
  for (const f of flows) {
    if (f.replySrc === f.origDst) continue;
    const live = backends.get(f.origDst);
    if ((live && !live.has(f.replySrc)) || gone.has(f.origDst)) stale.set(`${f.origDst} ${f.replySrc}`, f);
  }
  return [...stale.keys()].sort().map((k) => stale.get(k)!);
}

/** True when some backend of `previous` is not a backend of the same VIP in `plan` (or its VIP is gone). */
export function lostBackends(previous: LbPlan, plan: LbPlan): boolean {
  const now = new Map(plan.services.map((s) => [s.vip, new Set(s.backends.map((b) => b.ip))]));
  return previous.services.some((s) => {
    const live = now.get(s.vip);
    return !live || s.backends.some((b) => !live.has(b.ip));
  });
}

const conntrack = (netns: string | undefined, args: string[]) => runIn(netns, ["conntrack", ...args]);

/** Runs a `conntrack -D`; none to delete (they expired meanwhile, which is the goal) is success. */
async function deleteFlows(netns: string | undefined, filter: string[]): Promise<void> {
  try {
    await conntrack(netns, ["-D", ...filter]);
  } catch (e) {
    // exit status 1 with "0 flow entries have been deleted"
    if (!/ 0 flow entries/.test(String((e as { stderr?: string }).stderr))) throw e;
  }
}

/**
 * Deletes the UDP flows to a published port of the node (`netns`, undefined:
 * this one) once that port goes or leads elsewhere: its DNAT is kept by
 * conntrack for as long as the client keeps sending, as above.
 */
export async function flushPublishedUdpPort(netns: string | undefined, port: number): Promise<void> {
  // --dst-nat: only the flows the mesh NAT-ed, not the node's own to that port elsewhere
  await deleteFlows(netns, ["-p", "udp", "--orig-port-dst", String(port), "--dst-nat"]);
}

/** Deletes the sandbox's UDP flows that `staleUdpFlows` names; how many (VIP, task) pairs it flushed. */
export async function flushStaleUdpFlows(sandbox: string, plan: LbPlan, previous?: LbPlan): Promise<number> {
  const stale = staleUdpFlows(parseUdpFlows(await conntrack(sandbox, ["-L", "-p", "udp"])), plan, previous);
  for (const f of stale) await deleteFlows(sandbox, ["-p", "udp", "--orig-dst", f.origDst, "--reply-src", f.replySrc]);
  return stale.length;
}
