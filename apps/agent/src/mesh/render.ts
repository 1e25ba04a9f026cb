// The routing mesh's nftables tables, as whole `nft -f` scripts. Each is
// small (one element per published port, or a few fixed rules) and replaced
// atomically: `add table; delete table; table {…}` in one file is one
// transaction, and established connections keep their conntrack NAT.
//
// The path of a connection to node-address:PublishedPort (swarm's shape):
//
//   1. the node's namespace (MESH_TABLE): a packet to any of the node's own
//      addresses (`fib daddr type local`) whose protocol and port are in
//      @published is DNAT-ed to the service's VIP on the ingress network, at
//      the target port. Prerouting for clients elsewhere, output for the
//      node's own (loopback excepted: 127/8 cannot be routed off the node).
//      The node routes the ingress network to its ingress sandbox.
//   2. the ingress sandbox: the VIP is balanced to a ready task's ingress
//      address by the same load-balancing table as in task sandboxes
//      (dataplane/nftables, prerouting hook), and INGRESS_TABLE masquerades
//      what leaves on the overlay, so the task answers the ingress sandbox
//      and replies retrace the path through both NATs. TCP's MSS is clamped
//      to the route's MTU there: clients on the underlay assume 1500 bytes,
//      the overlay carries 1450.
//   3. the task's sandbox (TASK_FILTER_TABLE): its ingress interface accepts
//      only its service's published target ports, from ingress sandboxes
//      (not from other tasks on the ingress network, which could also forge a
//      PROXY protocol header), and replies of what it accepted.
//
// Nothing enters the node from its sandboxes but replies: the links to the
// ingress sandbox and to host-mode tasks carry the mesh's traffic back, not
// new connections from a task into the node or beyond it (the node forwards,
// for the mesh). The ingress sandbox likewise passes only replies from the
// overlay towards the node.
//
// The client's address is replaced at step 2 (as in swarm's mesh). Host-mode
// ports keep it: @host_published sends them, before the mesh's, straight to
// the local task's gateway link (a routed veth, kernel/sandbox.ts), whose
// default route brings the replies back through the node's NAT.
//
// The table holds its two maps (empty when nothing is published) and these filters.

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
