// The IPVS dataplane in the kernel, per sandbox (plan.ts says what and why):
//
//   - the marks table (marks.ts), loaded whole on a sandbox's first sync and
//     after a failure, else changed by elements;
//   - the IPVS virtual services and real servers, changed by one
//     `ipvsadm --restore` batch against `ipvsadm -Sn`, read back on a
//     sandbox's first sync (so a restarted agent changes only what differs:
//     the kernel is the record) and after a failure, else against what the
//     last batch left (one change costs a few lines, not a dump of them all);
//   - sysctls that swarm and kube-proxy learned the hard way, set once per sandbox.

import type { LbPlan } from "@vipmesh/core";
import { loadDeltaElseWhole } from "../../exec/nft.ts";
import { assertBatches, run, runIn, writeBatch, type BatchLine } from "../../exec/run.ts";
import type { LoadBalancer } from "../types.ts";
import { marksFor, renderMarks, renderMarksChange, type Marks } from "./marks.ts";
import { ipvsChanges, ipvsStateFor, leavingDests, parseIpvsConnections, parseIpvsSave, type IpvsState } from "./plan.ts";

/**
 * - conn_reuse_mode=0: with 1 (the default), a new connection from a reused
 *   source port to a quiesced or busy real server waits 1 s for the old entry
 *   to expire: the 1-second stalls kube-proxy's IPVS mode was known for.
 * - expire_nodest_conn=1: a packet of a connection whose real server was
 *   deleted drops the entry at once, so the client's next try is balanced
 *   anew instead of hanging until its timeout.
 * - expire_quiescent_template=1: a persistence template (client-IP affinity)
 *   pointing to a weight-0 server expires, so the client moves on instead of
 *   sticking to a draining task.
 */
export const IPVS_SYSCTLS = ["net.ipv4.vs.conn_reuse_mode=0", "net.ipv4.vs.expire_nodest_conn=1", "net.ipv4.vs.expire_quiescent_template=1"];

/**
 * In a sandbox that forwards (the ingress sandbox), vs.conntrack=1: IPVS keeps
 * conntrack entries for its connections, so that the masquerade towards the
 * tasks applies to them (libnetwork sets it there for the same reason).
 */
export const FORWARDING_SYSCTLS = ["net.ipv4.vs.conntrack=1"];

/** How long a real server that left keeps its established connections before it is deleted anyway. */
export const DEFAULT_DRAIN_MS = 30_000;

export interface KernelIpvsOptions {
  /** A real server that left is deleted after this long even if it still has connections. */
  drainMs?: number;
  log?: (line: string) => void;
}

export class KernelIpvs implements LoadBalancer {
  readonly dataplane = "ipvs" as const;
  /** Per sandbox, what its marks table holds, as far as this process loaded it (absent: load it whole). */
  private readonly marks = new Map<string, Marks>();
  /** Per sandbox, its IPVS state as the last batch left it (absent: read it back). */
  private readonly applied = new Map<string, IpvsState>();
  /** Per sandbox, "mark ip" of real servers quiesced and when. */
  private readonly drains = new Map<string, Map<string, number>>();
  /** Sandboxes whose IPVS sysctls are set. */
  private readonly tuned = new Set<string>();
  /** Per forwarding sandbox, the VIPs it has local routes for. */
  private readonly locals = new Map<string, Set<string>>();

  constructor(private readonly o: KernelIpvsOptions = {}) {}

  /**
   * Brings the sandbox's marks and IPVS services to `plan`; real servers that
   * left are quiesced and deleted on a later sync (the agent syncs again soon
   * while any drain: call `drainingIn`).
   */
  async sync(sandbox: string, plan: LbPlan, forwards = false): Promise<void> {
    if (!this.tuned.has(sandbox)) {
      await runIn(sandbox, ["sysctl", "-qw", ...IPVS_SYSCTLS, ...(forwards ? FORWARDING_SYSCTLS : [])]);
      this.tuned.add(sandbox);
    }
    // IPVS takes forwarded packets only where they are delivered locally: in a sandbox that forwards, its VIPs are local
    if (forwards) await this.localVips(sandbox, plan);
    // a marked packet with no virtual service yet passes on unbalanced, and the refuse set covers a VIP without
    // tasks: the marks need not wait for IPVS
    await this.syncMarks(sandbox, marksFor(plan));
    await this.syncIpvs(sandbox, ipvsStateFor(plan));
  }

  private async syncMarks(sandbox: string, next: Marks): Promise<void> {
    const prev = this.marks.get(sandbox);
    this.marks.delete(sandbox); // until it is loaded, nothing is known
    await loadDeltaElseWhole(sandbox, prev && renderMarksChange(prev, next), () => renderMarks(next));
    this.marks.set(sandbox, next);
  }

  private async syncIpvs(sandbox: string, wanted: IpvsState): Promise<void> {
    const current = this.applied.get(sandbox) ?? parseIpvsSave(await runIn(sandbox, ["ipvsadm", "-Sn"]));
    this.applied.delete(sandbox); // until the batch is in, nothing is known
    // connections count only for real servers that leave: read only when some do
    const leaving = leavingDests(current, wanted);
    const connections = leaving.length > 0 ? parseIpvsConnections(await runIn(sandbox, ["ipvsadm", "-Lnc"])) : new Map<string, number>();
    const since = this.drains.get(sandbox) ?? new Map<string, number>();
    const drainMs = this.o.drainMs ?? DEFAULT_DRAIN_MS;
    const now = Date.now();
    const change = ipvsChanges(current, wanted, connections, (key) => now - (since.get(key) ?? now) >= drainMs);
    if (change.commands) await runIn(sandbox, ["ipvsadm", "--restore"], { input: change.commands });
    this.applied.set(sandbox, change.after);
    this.drains.set(sandbox, new Map(change.draining.map((k) => [k, since.get(k) ?? now])));
  }

  /** Real servers of the sandbox still draining (a sync after their connections end deletes them). */
  drainingIn(sandbox: string): number {
    return this.drains.get(sandbox)?.size ?? 0;
  }

  draining(): boolean {
    return [...this.drains.values()].some((d) => d.size > 0);
  }

  /** UDP flows of deleted real servers go by themselves (expire_nodest_conn); those of draining ones keep it until deleted. */
  async flushStaleFlows(): Promise<void> {}

  forget(sandbox: string): void {
    this.marks.delete(sandbox);
    this.applied.delete(sandbox);
    this.drains.delete(sandbox);
    this.tuned.delete(sandbox);
    this.locals.delete(sandbox);
  }

  /** `local VIP/32 dev lo` routes in the sandbox's local table: exactly the plan's VIPs. */
  private async localVips(sandbox: string, plan: LbPlan): Promise<void> {
    const want = new Set(plan.services.filter((s) => s.fwmark).map((s) => s.vip));
    const have = this.locals.get(sandbox) ?? new Set(
      (await run("ip", ["-4", "route", "show", "table", "local", "type", "local", "dev", "lo"], { netns: sandbox }))
        .split("\n")
        .map((l) => /^local (\d+\.\d+\.\d+\.\d+) /.exec(l)?.[1])
        .filter((ip): ip is string => ip !== undefined && !ip.startsWith("127.")),
    );
    const lines: BatchLine[] = [
      ...[...have].filter((ip) => !want.has(ip)).map((ip) => ({ text: `route del local ${ip}/32 dev lo table local`, tolerate: "missing" as const })),
      ...[...want].filter((ip) => !have.has(ip)).map((ip) => ({ text: `route replace local ${ip}/32 dev lo table local` })),
    ];
    this.locals.delete(sandbox);
    assertBatches([await writeBatch("ip", lines, sandbox)]);
    this.locals.set(sandbox, want);
  }
}
