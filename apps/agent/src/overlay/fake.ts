// An in-memory overlay for unit tests of the agent: checks plans as the kernel
// driver does, keeps the last, and dumps it as sorted text, so a test asserts
// on a diff; `writes` counts what syncs changed ("the second sync changes nothing").

import { canonicalOverlayPlan, checkOverlayPlan } from "../exec/canonical.ts";
import { names } from "../exec/names.ts";
import type { OverlayDriver, OverlayPlan } from "./types.ts";

const overlayLines = (p: OverlayPlan): string[] =>
  p.networks.length === 0
    ? []
    : [
        `local ${p.localAddr}`,
        ...p.networks.flatMap((n) => [
          `network ${n.vni} ${n.networkId}: ${names.bridge(n.vni)} ${names.vxlan(n.vni)}`,
          ...n.remotes.map((r) => `  ${n.vni} ${r.ip} ${r.mac} via ${r.nodeAddr}`),
        ]),
      ];

/** How many lines one dump has that the other has not, both ways. */
function changedLines(before: string[], after: string[]): number {
  const a = new Set(before);
  const b = new Set(after);
  return [...a].filter((l) => !b.has(l)).length + [...b].filter((l) => !a.has(l)).length;
}

export class FakeOverlay implements OverlayDriver {
  private plan: OverlayPlan = { localAddr: "", networks: [] };
  private failures: Error[] = [];
  /** Calls of sync(), failed ones included. */
  syncs = 0;
  /** Dump lines changed by all syncs so far: unchanged by a sync that had nothing to do. */
  writes = 0;

  /** Makes the next sync() fail with this error (several calls queue several failures). */
  failNextSync(error = new Error("fake overlay: injected failure")): void {
    this.failures.push(error);
  }

  async sync(plan: OverlayPlan): Promise<void> {
    this.syncs++;
    const failure = this.failures.shift();
    if (failure) throw failure;
    checkOverlayPlan(plan);
    const next = canonicalOverlayPlan(plan);
    if (next.networks.length === 0) next.localAddr = ""; // like the kernel, which keeps it on the VXLAN devices only
    this.writes += changedLines(overlayLines(this.plan), overlayLines(next));
    this.plan = next;
  }

  async read(): Promise<OverlayPlan> {
    return structuredClone(this.plan);
  }

  hasNetwork(vni: number): boolean {
    return this.plan.networks.some((n) => n.vni === vni);
  }

  /** Where a frame for `ip` on VNI `vni` goes from this node: the remote node's address, or undefined (dropped, or local). */
  nodeFor(vni: number, ip: string): string | undefined {
    return this.plan.networks.find((n) => n.vni === vni)?.remotes.find((r) => r.ip === ip)?.nodeAddr;
  }

  dump(): string {
    return overlayLines(this.plan).map((l) => `${l}\n`).join("");
  }
}
