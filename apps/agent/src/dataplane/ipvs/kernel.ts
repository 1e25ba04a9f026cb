// The IPVS dataplane in the kernel, per sandbox (plan.ts says what and why):
//
//   - one nft table, `vipmesh-ipvs`: `meta mark set ip daddr map @vip_marks`
//     at mangle priority (-150) in output (the sandbox's own clients) and
//     prerouting (what an ingress sandbox forwards), before IPVS looks at the
//     packet; a VIP without a ready task is refused at once (reset, ICMP) as
//     on the nftables dataplane, instead of being left to time out;
//   - the IPVS virtual services and real servers, changed by one
//     `ipvsadm --restore` batch against `ipvsadm -Sn` read back each sync, so
//     a restarted agent changes only what differs (and forgets nothing: the
//     kernel is the record);
//   - sysctls that swarm and kube-proxy learned the hard way, set once per sandbox.

import type { LbPlan } from "@vipmesh/core";
import { loadNft, replaceTableScript } from "../../kernel/nft.ts";
import { assertBatches, run, runIn, writeBatch, type BatchLine } from "../../kernel/run.ts";
import type { LoadBalancer } from "../types.ts";
import { ipvsChanges, ipvsStateFor, parseIpvsConnections, parseIpvsSave } from "./plan.ts";

export const IPVS_TABLE = "vipmesh-ipvs";

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

function renderMarks(plan: LbPlan): string {
  const marked = plan.services.filter((s) => s.fwmark);
  const marks = marked.map((s) => `${s.vip} : ${s.fwmark}`);
  const empty = marked.filter((s) => s.backends.every((b) => b.weight === 0)).map((s) => s.vip);
  const elements = (xs: string[]) => (xs.length > 0 ? [`    elements = { ${xs.join(", ")} }`] : []);
  return replaceTableScript(IPVS_TABLE, [
    "  map vip_marks {",
    "    type ipv4_addr : mark",
    ...elements(marks),
    "  }",
    "  set vips_without_backends {",
    "    type ipv4_addr",
    ...elements(empty),
    "  }",
    "  chain mark_output {",
    "    type route hook output priority -150; policy accept;",
    "    meta mark set ip daddr map @vip_marks",
    "  }",
    "  chain mark_prerouting {",
    "    type filter hook prerouting priority -150; policy accept;",
    "    meta mark set ip daddr map @vip_marks",
    "  }",
    "  chain refuse_output {",
    "    type filter hook output priority 0; policy accept;",
    "    ip daddr @vips_without_backends meta l4proto tcp reject with tcp reset",
    "    ip daddr @vips_without_backends reject",
    "  }",
    "  chain refuse_forward {",
    "    type filter hook forward priority 0; policy accept;",
    "    ip daddr @vips_without_backends meta l4proto tcp reject with tcp reset",
    "    ip daddr @vips_without_backends reject",
    "  }",
  ]);
}

export interface KernelIpvsOptions {
  /** A real server that left is deleted after this long even if it still has connections. */
  drainMs?: number;
  log?: (line: string) => void;
}

export class KernelIpvs implements LoadBalancer {
  readonly dataplane = "ipvs" as const;
  /** Per sandbox: the marks script last loaded, and whether its sysctls are set. */
  private readonly marks = new Map<string, string>();
  /** Per sandbox, "mark ip" of real servers quiesced and when. */
  private readonly drains = new Map<string, Map<string, number>>();
  /** Per forwarding sandbox, the VIPs it has local routes for. */
  private readonly locals = new Map<string, Set<string>>();

  constructor(private readonly o: KernelIpvsOptions = {}) {}

  /**
   * Brings the sandbox's marks and IPVS services to `plan`; real servers that
   * left are quiesced and deleted on a later sync (the agent syncs again soon
   * while any drain: call `drainingIn`).
   */
  async sync(sandbox: string, plan: LbPlan, forwards = false): Promise<void> {
    if (!this.marks.has(sandbox)) await runIn(sandbox, ["sysctl", "-qw", ...IPVS_SYSCTLS, ...(forwards ? FORWARDING_SYSCTLS : [])]);
    // IPVS takes forwarded packets only where they are delivered locally: in a sandbox that forwards, its VIPs are local
    if (forwards) await this.localVips(sandbox, plan);
    const script = renderMarks(plan);
    // marks first for a new VIP (its service exists before packets are marked for it) is not
    // needed: a marked packet with no service passes on, unbalanced, and the refuse set covers a VIP without tasks
    if (this.marks.get(sandbox) !== script) {
      this.marks.delete(sandbox);
      await loadNft(sandbox, script);
      this.marks.set(sandbox, script);
    }
    const [saved, listed] = await Promise.all([runIn(sandbox, ["ipvsadm", "-Sn"]), runIn(sandbox, ["ipvsadm", "-Ln"])]);
    const since = this.drains.get(sandbox) ?? new Map<string, number>();
    const drainMs = this.o.drainMs ?? DEFAULT_DRAIN_MS;
    const now = Date.now();
    const change = ipvsChanges(parseIpvsSave(saved), ipvsStateFor(plan), parseIpvsConnections(listed), (key) => now - (since.get(key) ?? now) >= drainMs);
    if (change.commands) await runIn(sandbox, ["ipvsadm", "--restore"], { input: change.commands });
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
    this.drains.delete(sandbox);
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
