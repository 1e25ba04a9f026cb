// The routing mesh's nftables tables, as whole `nft -f` scripts, each small
// and replaced atomically in one transaction: the node's published ports
// (DNAT to the service's VIP on the ingress network, or straight to a local
// host-mode task), the ingress sandbox's masquerade onto the overlay, and the
// filter on task sandboxes' ingress interfaces. The path of a connection,
// step by step (docs/ARCHITECTURE.md, "Routing mesh path").

import { replaceTableScript as replaceTable } from "../exec/nft.ts";
import type { PublishedPort, TaskIngressFilter } from "./plan.ts";

export const MESH_TABLE = "vipmesh-mesh";
export const PUBLISHED_MAP = "published";
export const HOST_PUBLISHED_MAP = "host_published";
export const INGRESS_TABLE = "vipmesh-ingress";
export const TASK_FILTER_TABLE = "vipmesh-ingress-filter";

const portMap = (name: string, ports: readonly PublishedPort[]): string[] => [
  `  map ${name} {`,
  "    type inet_proto . inet_service : ipv4_addr . inet_service",
  ...(ports.length > 0 ? [`    elements = { ${ports.map((p) => `${p.protocol} . ${p.port} : ${p.to} . ${p.targetPort}`).join(",\n                 ")} }`] : []),
  "  }",
];

/** Links from the node to its sandboxes: the ingress sandbox's, and host-mode tasks' gateway links (vmg…). */
const SANDBOX_LINKS = ["vmingress", "vmg*"];

/** The node namespace's table: host-mode ports → local task, mesh ports → VIP, both at the target port; only replies from sandboxes. */
export function renderPublishedPorts(mesh: readonly PublishedPort[], host: readonly PublishedPort[]): string {
  const repliesOnly = SANDBOX_LINKS.map((l) => `    iifname "${l}" ct state != { established, related } drop`);
  const dnat = (prefix: string) => [
    `    ${prefix}fib daddr type local dnat ip to meta l4proto . th dport map @${HOST_PUBLISHED_MAP}`,
    `    ${prefix}fib daddr type local dnat ip to meta l4proto . th dport map @${PUBLISHED_MAP}`,
  ];
  return replaceTable(MESH_TABLE, [
    ...portMap(HOST_PUBLISHED_MAP, host),
    ...portMap(PUBLISHED_MAP, mesh),
    "  chain prerouting {",
    "    type nat hook prerouting priority -100; policy accept;",
    ...dnat(""),
    "  }",
    "  chain output {",
    "    type nat hook output priority -100; policy accept;",
    ...dnat("ip daddr != 127.0.0.0/8 "),
    "  }",
    "  chain from_sandboxes_in {",
    "    type filter hook input priority 0; policy accept;",
    ...repliesOnly,
    "  }",
    "  chain from_sandboxes_forward {",
    "    type filter hook forward priority 0; policy accept;",
    ...repliesOnly,
    "  }",
  ]);
}

/** The ingress sandbox's own table: masquerade towards the tasks, MSS clamped to the overlay, only replies from it. */
export function renderIngressSandbox(overlayIfname: string, gatewayIfname: string): string {
  return replaceTable(INGRESS_TABLE, [
    "  chain forward {",
    "    type filter hook forward priority 0; policy accept;",
    "    tcp flags syn tcp option maxseg size set rt mtu",
    `    iifname "${overlayIfname}" oifname "${gatewayIfname}" ct state != { established, related } drop`,
    "  }",
    "  chain postrouting {",
    "    type nat hook postrouting priority 100; policy accept;",
    `    oifname "${overlayIfname}" masquerade`,
    "  }",
  ]);
}

/** A task sandbox's filter on its ingress interface: its published target ports from ingress sandboxes, and replies. */
export function renderTaskIngressFilter(f: TaskIngressFilter): string {
  const elements = (xs: string[]) => (xs.length > 0 ? [`    elements = { ${xs.join(", ")} }`] : []);
  return replaceTable(TASK_FILTER_TABLE, [
    "  set published_targets {",
    "    type inet_proto . inet_service",
    ...elements(f.accept.map((p) => `${p.protocol} . ${p.port}`)),
    "  }",
    "  set ingress_sandboxes {",
    "    type ipv4_addr",
    ...elements(f.from),
    "  }",
    "  chain input {",
    "    type filter hook input priority 0; policy accept;",
    `    iifname != "${f.ifname}" accept`,
    "    ct state established,related accept",
    "    ip saddr @ingress_sandboxes meta l4proto . th dport @published_targets accept",
    "    drop",
    "  }",
  ]);
}
