// A node's advertise address: where other nodes reach it (VXLAN, ESP,
// published ports through the mesh), so it must be one they can send to.

import { invalid } from "./errors.ts";
import { cidrContains, formatCidr, parseIpv4 } from "./ipv4.ts";
import { NOT_UNICAST } from "./validation.ts";

const LOOPBACK = "127.0.0.0/8";

/**
 * A unicast, routable address (validateSubnet's rule for overlays); loopback
 * only for a manager whose nodes all share its machine (tests, simulated
 * agents): --allow-loopback-nodes.
 */
export function validateAdvertiseAddress(addr: string, allowLoopback: boolean): string {
  const n = parseIpv4(addr);
  if (n === undefined) throw invalid(`advertise address "${addr}" is not an IPv4 address`);
  const range = NOT_UNICAST.find((r) => cidrContains(r.cidr, n) && !(allowLoopback && formatCidr(r.cidr) === LOOPBACK));
  if (range) {
    const loopback = formatCidr(range.cidr) === LOOPBACK ? " (a manager whose nodes all run on its own machine allows it with --allow-loopback-nodes)" : "";
    throw invalid(
      `advertise address ${addr} is in ${formatCidr(range.cidr)} (${range.what}): other nodes cannot reach this node there${loopback}; ` +
        "give --advertise-addr the node's own unicast address on the network between the nodes",
    );
  }
  return addr;
}
