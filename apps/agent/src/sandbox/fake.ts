// An in-memory sandbox driver for unit tests of the agent: checks plans as the
// kernel driver does, keeps them, and dumps them as sorted text; `writes`
// counts namespaces and interfaces made, changed or removed.

import { checkSandboxPlan, compareNames, isNetnsName, KernelPlanError, sandboxStateOf } from "../exec/canonical.ts";
import { names } from "../exec/names.ts";
import type { FakeOverlay } from "../overlay/fake.ts";
import type { SandboxDriver, SandboxPlan, SandboxState } from "./types.ts";

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
