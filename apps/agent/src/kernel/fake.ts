// In-memory drivers for unit tests of the agent's sync logic. They check
// plans as the kernel drivers do, keep what they were told, and dump it as
// sorted text, so a test asserts on a diff; `writes` counts what a sync or
// ensure changed, so "the second sync changes nothing" is checkable too.

import { canonicalOverlayPlan, checkOverlayPlan, checkSandboxPlan, compareNames, isNetnsName, KernelPlanError, sandboxStateOf } from "./canonical.ts";
import { names, type OverlayDriver, type OverlayPlan, type SandboxDriver, type SandboxPlan, type SandboxState } from "./types.ts";

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

export interface FakeSandboxesOptions {
  /** When given, ensure() fails for a VNI this overlay has no network for, as the kernel driver fails without the bridge. */
  overlay?: FakeOverlay;
}

interface FakeSandbox {
  plan: SandboxPlan;
  /** Per interface name: a number that changes only when the interface is made anew. */
  ifindex: Map<string, number>;
}

export class FakeSandboxes implements SandboxDriver {
  private readonly sandboxes = new Map<string, FakeSandbox>();
  private nextIfindex = 2;
  /** Namespaces, interfaces and interface settings made, changed or removed so far. */
  writes = 0;

  constructor(private readonly o: FakeSandboxesOptions = {}) {}

  async ensure(plan: SandboxPlan): Promise<void> {
    checkSandboxPlan(plan);
    for (const i of plan.interfaces) {
      if (this.o.overlay && !this.o.overlay.hasNetwork(i.vni)) {
        throw new KernelPlanError(`sandbox ${plan.name}: ${i.ifname} joins VNI ${i.vni}, but its bridge ${names.bridge(i.vni)} is not there (is the overlay synced?)`);
      }
    }
    let sb = this.sandboxes.get(plan.name);
    if (!sb) {
      sb = { plan, ifindex: new Map() };
      this.sandboxes.set(plan.name, sb);
      this.writes++;
    }
    const old = new Map(sb.plan.interfaces.map((i) => [i.ifname, i]));
    const ifindex = new Map<string, number>();
    for (const i of plan.interfaces) {
      const was = old.get(i.ifname);
      const index = sb.ifindex.get(i.ifname);
      if (!was || index === undefined) {
        ifindex.set(i.ifname, this.nextIfindex++);
        this.writes++;
        continue;
      }
      ifindex.set(i.ifname, index);
      this.writes += Number(was.vni !== i.vni) + Number(was.addr !== i.addr) + Number(was.mac.toLowerCase() !== i.mac.toLowerCase());
    }
    for (const name of old.keys()) if (!ifindex.has(name)) this.writes++;
    this.sandboxes.set(plan.name, { plan: structuredClone(plan), ifindex });
  }

  async remove(name: string): Promise<void> {
    if (!isNetnsName(name)) throw new KernelPlanError(`"${name}" is not a sandbox name`);
    if (this.sandboxes.delete(name)) this.writes++;
  }

  /** Connections a test says a sandbox holds (none by default). */
  readonly connections = new Map<string, number>();

  async establishedConnections(name: string): Promise<number> {
    return this.connections.get(name) ?? 0;
  }

  async list(prefix: string): Promise<SandboxState[]> {
    return [...this.sandboxes.values()]
      .filter((s) => s.plan.name.startsWith(prefix))
      .map((s) => ({ ...sandboxStateOf(s.plan), taskId: s.plan.name.slice(prefix.length) }))
      .sort((a, b) => compareNames(a.name, b.name));
  }

  /** The plan a sandbox was last ensured with (hostname included), or undefined. */
  get(name: string): SandboxPlan | undefined {
    const sb = this.sandboxes.get(name);
    return sb && structuredClone(sb.plan);
  }

  /** Stands for the kernel's ifindex: the same number as long as the interface was not made anew. */
  ifindex(name: string, ifname: string): number | undefined {
    return this.sandboxes.get(name)?.ifindex.get(ifname);
  }

  dump(): string {
    return [...this.sandboxes.values()]
      .sort((a, b) => compareNames(a.plan.name, b.plan.name))
      .flatMap(({ plan }) => [
        `sandbox ${plan.name} task ${plan.taskId} hostname ${plan.hostname}`,
        ...sandboxStateOf(plan).interfaces.map((i) => `  ${i.ifname} vni ${i.vni} ${i.addr} ${i.mac}`),
      ])
      .map((l) => `${l}\n`)
      .join("");
  }
}
