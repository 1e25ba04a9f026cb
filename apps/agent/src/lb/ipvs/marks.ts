// The IPVS dataplane's nft table in a sandbox, `vipmesh-ipvs`: one map lookup
// marks a packet to a VIP with the VIP's firewall mark (`meta mark set ip daddr
// map @vip_marks`) at mangle priority (-150), in output (the sandbox's own
// clients) and prerouting (what an ingress sandbox forwards), before IPVS looks
// at it; not a rule per VIP as libnetwork's iptables. A VIP without a ready task
// is refused at once (reset, ICMP), as on the nftables dataplane, instead of
// being left to time out.

import type { LbPlan } from "@vipmesh/core";
import { replaceTableScript } from "../../exec/nft.ts";

export const IPVS_TABLE = "vipmesh-ipvs";

/** The VIP → mark map and the VIPs without a ready task, as the marks table holds them. */
export interface Marks {
  marks: Map<string, number>;
  empty: Set<string>;
}

export function marksFor(plan: LbPlan): Marks {
  const marked = plan.services.filter((s) => s.fwmark);
  return {
    marks: new Map(marked.map((s) => [s.vip, s.fwmark!])),
    empty: new Set(marked.filter((s) => s.backends.every((b) => b.weight === 0)).map((s) => s.vip)),
  };
}

export function renderMarks({ marks, empty }: Marks): string {
  const elements = (xs: string[]) => (xs.length > 0 ? [`    elements = { ${xs.join(", ")} }`] : []);
  return replaceTableScript(IPVS_TABLE, [
    "  map vip_marks {",
    "    type ipv4_addr : mark",
    ...elements([...marks].map(([vip, mark]) => `${vip} : ${mark}`)),
    "  }",
    "  set vips_without_backends {",
    "    type ipv4_addr",
    ...elements([...empty]),
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

/** Element changes from `prev` to `next` in one transaction ("" when none): one service costs a few elements, not a reload. */
export function renderMarksChange(prev: Marks, next: Marks): string {
  const lines: string[] = [];
  const change = (op: "add" | "delete", what: string, xs: string[]) => {
    if (xs.length > 0) lines.push(`${op} element ip ${IPVS_TABLE} ${what} { ${xs.join(", ")} }`);
  };
  change("delete", "vip_marks", [...prev.marks].filter(([vip, mark]) => next.marks.get(vip) !== mark).map(([vip]) => vip));
  change("add", "vip_marks", [...next.marks].filter(([vip, mark]) => prev.marks.get(vip) !== mark).map(([vip, mark]) => `${vip} : ${mark}`));
  change("delete", "vips_without_backends", [...prev.empty].filter((vip) => !next.empty.has(vip)));
  change("add", "vips_without_backends", [...next.empty].filter((vip) => !prev.empty.has(vip)));
  return lines.length > 0 ? `${lines.join("\n")}\n` : "";
}
