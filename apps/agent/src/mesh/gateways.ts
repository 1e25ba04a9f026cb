// Addresses of the gateway links of task sandboxes that publish host-mode
// ports: one /30 each from 169.254.128.0/17 (link-local: the link never leaves
// the node), node end .1, task end .2. Node-local, so the agent hands them out
// itself; a restarted agent learns those in use from the kernel (seed()).

import { formatIpv4, parseCidr } from "@vipmesh/core";
import { GATEWAY_IFNAME, type SandboxGateway, type SandboxState } from "../sandbox/types.ts";
import { names } from "../exec/names.ts";

const BASE = parseCidr("169.254.128.0/17", true)!.base;
const SLOTS = 8192; // /30s in a /17

function gatewayAt(taskId: string, slot: number): SandboxGateway {
  const net = BASE + slot * 4;
  return { hostIfname: names.gatewayVeth(taskId), hostAddr: `${formatIpv4(net + 1)}/30`, addr: `${formatIpv4(net + 2)}/30` };
}

export class GatewayAddresses {
  private readonly byTask = new Map<string, number>();
  private readonly used = new Set<number>();
  /** Whether seed() was called: it must be, before the first allocation. */
  seeded = false;

  /** Takes note of the gateway links the kernel already has (an agent restart). */
  seed(sandboxes: readonly SandboxState[]): void {
    this.seeded = true;
    for (const sb of sandboxes) {
      const gw = sb.interfaces.find((i) => i.ifname === GATEWAY_IFNAME)?.addr;
      const base = gw ? parseCidr(gw, false)?.base : undefined;
      if (base === undefined) continue;
      const slot = Math.floor((base - BASE) / 4);
      if (slot >= 0 && slot < SLOTS) this.take(sb.taskId, slot);
    }
  }

  /** The task's gateway link, if it has one. */
  get(taskId: string): SandboxGateway | undefined {
    const slot = this.byTask.get(taskId);
    return slot === undefined ? undefined : gatewayAt(taskId, slot);
  }

  /** The task's gateway link: the one it has, else a free /30 (starting from a hash of its ID). */
  for(taskId: string): SandboxGateway {
    let slot = this.byTask.get(taskId);
    if (slot === undefined) {
      let h = 0;
      for (const c of taskId) h = (h * 31 + c.charCodeAt(0)) >>> 0;
      for (let i = 0; i < SLOTS && slot === undefined; i++) if (!this.used.has((h + i) % SLOTS)) slot = (h + i) % SLOTS;
      if (slot === undefined) throw new Error(`no free gateway address for task ${taskId}: ${SLOTS} host-mode tasks on this node`);
      this.take(taskId, slot);
    }
    return gatewayAt(taskId, slot);
  }

  release(taskId: string): void {
    const slot = this.byTask.get(taskId);
    if (slot === undefined) return;
    this.byTask.delete(taskId);
    this.used.delete(slot);
  }

  private take(taskId: string, slot: number): void {
    this.byTask.set(taskId, slot);
    this.used.add(slot);
  }
}
