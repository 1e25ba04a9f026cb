// Task sandboxes: a named network namespace per task, with one veth pair per
// network whose host end, in the node's namespace, joins that network's
// bridge. ensure() leaves an interface that is already right alone, so that a
// surviving task keeps its connections. Each host end carries an alias
// `vmsb/<namespace>/<ifname>`: that is how list() and remove() find the host
// ends of a sandbox, even one whose namespace name is gone while a process
// still holds the namespace (and so the veth) alive.

import { TrustCache } from "../exec/trust.ts";
import { NETNS_ETC, removeSandboxEtc, writeSandboxEtc } from "./etc.ts";
import { checkSandboxPlan, compareNames, isNetnsName, KernelPlanError } from "../exec/canonical.ts";
import { ipv4Cidrs, readLinks, type KernelLink } from "../exec/links.ts";
import {
  assertBatches,
  KernelCommandError,
  readJson,
  runIn,
  writeBatch,
  writeCommand,
  type BatchLine,
  type BatchOutcome,
  type KernelOptions,
} from "../exec/run.ts";
import { addrOf } from "@vipmesh/core";
import { GATEWAY_IFNAME, type SandboxDriver, type SandboxInterface, type SandboxPlan, type SandboxState } from "./types.ts";
import { names } from "../exec/names.ts";
import { OVERLAY_MTU } from "../overlay/types.ts";

const HOST_ALIAS = "vmsb/";
const hostAlias = (sandbox: string, ifname: string) => `${HOST_ALIAS}${sandbox}/${ifname}`;
const BRIDGE = /^vmbr(\d+)$/;
/** Namespaces read at once by list(). */
const LIST_CONCURRENCY = 8;

function parseHostAlias(alias: string | undefined): { sandbox: string; ifname: string } | undefined {
  if (!alias?.startsWith(HOST_ALIAS)) return undefined;
  const [sandbox, ifname, ...rest] = alias.slice(HOST_ALIAS.length).split("/");
  return sandbox && ifname && rest.length === 0 ? { sandbox, ifname } : undefined;
}

/** Host ends of sandbox veths in the node's namespace, by sandbox name, then by the interface name inside. */
function hostEnds(nodeLinks: Map<string, KernelLink>): Map<string, Map<string, KernelLink>> {
  const out = new Map<string, Map<string, KernelLink>>();
  for (const l of nodeLinks.values()) {
    const owner = l.kind === "veth" ? parseHostAlias(l.alias) : undefined;
    if (!owner) continue;
    let ends = out.get(owner.sandbox);
    if (!ends) out.set(owner.sandbox, (ends = new Map()));
    ends.set(owner.ifname, l);
  }
  return out;
}

/** A name listed in /run/netns whose namespace is gone (its bind mount lost): `ip -n` cannot enter it. */
const isDeadNamespace = (e: unknown) => e instanceof KernelCommandError && /setting the network namespace .* failed/.test(e.stderr);

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export interface KernelSandboxesOptions extends KernelOptions {
  /** How long a sandbox just made is trusted without reading the kernel back (as the overlay's); 0: never. Default 10 s. */
  trustMs?: number;
  /** Where each sandbox's /etc files go; default /etc/netns (what `ip netns exec` mounts). */
  etcDir?: string;
}

export class KernelSandboxes implements SandboxDriver {
  private readonly trust: TrustCache;

  constructor(private readonly o: KernelSandboxesOptions = {}) {
    this.trust = new TrustCache(o.trustMs ?? 10_000);
  }

  private get etcDir(): string {
    return this.o.etcDir ?? NETNS_ETC;
  }

  /** Named namespaces; always in the current namespace and mount namespace (see RunOptions.netns). */
  private async namespaces(): Promise<Set<string>> {
    const list = await readJson<{ name: string }[]>("ip", ["netns", "list"]);
    return new Set(list.map((n) => n.name));
  }

  async ensure(plan: SandboxPlan): Promise<void> {
    checkSandboxPlan(plan);
    await this.trust.ensure(plan.name, JSON.stringify(plan), async () => {
      await this.make(plan);
      writeSandboxEtc(this.etcDir, plan);
    });
  }

  private async make(plan: SandboxPlan): Promise<void> {
    const [nodeLinks, namespaces] = await Promise.all([readLinks(this.o.netns), this.namespaces()]);
    for (const i of plan.interfaces) {
      const br = names.bridge(i.vni);
      if (nodeLinks.get(br)?.kind !== "bridge") {
        throw new KernelPlanError(`sandbox ${plan.name}: ${i.ifname} joins VNI ${i.vni}, but its bridge ${br} is not there (is the overlay synced?)`);
      }
    }
    plan.interfaces.forEach((_, index) => {
      const host = names.hostVeth(plan.taskId, index);
      const owner = parseHostAlias(nodeLinks.get(host)?.alias);
      if (owner && owner.sandbox !== plan.name) throw new KernelPlanError(`sandbox ${plan.name}: host end ${host} belongs to sandbox ${owner.sandbox}`);
    });

    let sandboxLinks: Map<string, KernelLink> | undefined;
    if (namespaces.has(plan.name)) {
      try {
        sandboxLinks = await readLinks(plan.name);
      } catch (e) {
        if (!isDeadNamespace(e)) throw e;
        await writeCommand("ip", ["netns", "del", plan.name], "missing", this.o.onWrite);
      }
    }
    if (!sandboxLinks) {
      await writeCommand("ip", ["netns", "add", plan.name], "exists", this.o.onWrite);
      sandboxLinks = await readLinks(plan.name);
    }

    // inside first (deletes), then the node (host ends, new pairs), then inside again (addresses, up)
    const before: BatchLine[] = [];
    const node: BatchLine[] = [];
    const after: BatchLine[] = [];
    const ends = hostEnds(nodeLinks).get(plan.name) ?? new Map<string, KernelLink>();
    const hosts = new Set<string>();
    const ifnames = new Set<string>();

    if (!sandboxLinks.get("lo")?.up) after.push({ text: "link set dev lo up" });
    plan.interfaces.forEach((want, index) => {
      const host = names.hostVeth(plan.taskId, index);
      const br = names.bridge(want.vni);
      const mac = want.mac.toLowerCase();
      const alias = hostAlias(plan.name, want.ifname);
      const mtu = want.mtu ?? OVERLAY_MTU;
      hosts.add(host);
      ifnames.add(want.ifname);
      const h = nodeLinks.get(host);
      const s = sandboxLinks.get(want.ifname);
      const paired = h?.kind === "veth" && s?.kind === "veth" && s.peerIndex === h.ifindex && h.peerIndex === s.ifindex;
      if (paired) {
        const hostFix = [
          ...(h.mtu !== mtu ? [`mtu ${mtu}`] : []),
          ...(h.alias !== alias ? [`alias ${alias}`] : []),
          ...(h.master !== br ? [`master ${br}`] : []),
          ...(h.up ? [] : ["up"]),
        ];
        if (hostFix.length > 0) node.push({ text: `link set dev ${host} ${hostFix.join(" ")}` });
        const fix = [...(s.mtu !== mtu ? [`mtu ${mtu}`] : []), ...(s.mac !== mac ? [`address ${mac}`] : []), ...(s.up ? [] : ["up"])];
        if (fix.length > 0) after.push({ text: `link set dev ${want.ifname} ${fix.join(" ")}` });
        const cidrs = ipv4Cidrs(s);
        // extra addresses go first: deleting a primary address also deletes its secondaries
        for (const c of cidrs) if (c !== want.addr) after.push({ text: `addr del ${c} dev ${want.ifname}`, tolerate: "missing" });
        if (!cidrs.includes(want.addr)) after.push({ text: `addr add ${want.addr} dev ${want.ifname}`, tolerate: "exists" });
        return;
      }
      // anything half-made or mismatched is made anew (deleting either end of a veth deletes both)
      if (s) before.push({ text: `link del dev ${want.ifname}`, tolerate: "missing" });
      if (h) node.push({ text: `link del dev ${host}`, tolerate: "missing" });
      node.push(
        {
          text: `link add name ${host} mtu ${mtu} type veth peer name ${want.ifname} mtu ${mtu} address ${mac} netns ${plan.name}`,
          tolerate: "exists",
        },
        // the host end is a bridge port only: no IPv6 link-local address on it
        { text: `link set dev ${host} addrgenmode none`, tolerate: "no-ipv6" },
        { text: `link set dev ${host} alias ${alias} master ${br} up` },
      );
      after.push({ text: `addr add ${want.addr} dev ${want.ifname}`, tolerate: "exists" }, { text: `link set dev ${want.ifname} up` });
    });
    if (plan.gateway) {
      const g = plan.gateway;
      const alias = hostAlias(plan.name, GATEWAY_IFNAME);
      hosts.add(g.hostIfname);
      ifnames.add(GATEWAY_IFNAME);
      const h = nodeLinks.get(g.hostIfname);
      const s = sandboxLinks.get(GATEWAY_IFNAME);
      const paired = h?.kind === "veth" && s?.kind === "veth" && s.peerIndex === h.ifindex && h.peerIndex === s.ifindex;
      const right = paired && h.up && s.up && h.alias === alias && ipv4Cidrs(h).join() === g.hostAddr && ipv4Cidrs(s).join() === g.addr;
      if (!right) {
        // small and stateless: made anew whole rather than repaired piece by piece
        if (s) before.push({ text: `link del dev ${GATEWAY_IFNAME}`, tolerate: "missing" });
        if (h) node.push({ text: `link del dev ${g.hostIfname}`, tolerate: "missing" });
        node.push(
          { text: `link add name ${g.hostIfname} type veth peer name ${GATEWAY_IFNAME} netns ${plan.name}`, tolerate: "exists" },
          { text: `link set dev ${g.hostIfname} addrgenmode none`, tolerate: "no-ipv6" },
          { text: `addr add ${g.hostAddr} dev ${g.hostIfname}`, tolerate: "exists" },
          { text: `link set dev ${g.hostIfname} alias ${alias} up` },
        );
        after.push(
          { text: `addr add ${g.addr} dev ${GATEWAY_IFNAME}`, tolerate: "exists" },
          { text: `link set dev ${GATEWAY_IFNAME} up` },
          { text: `route replace default via ${addrOf(g.hostAddr)} dev ${GATEWAY_IFNAME}` },
        );
      }
    }
    for (const s of sandboxLinks.values()) {
      if (s.kind === "veth" && !ifnames.has(s.ifname)) before.push({ text: `link del dev ${s.ifname}`, tolerate: "missing" });
    }
    for (const h of ends.values()) if (!hosts.has(h.ifname)) node.push({ text: `link del dev ${h.ifname}`, tolerate: "missing" });

    const outcomes: BatchOutcome[] = [];
    outcomes.push(await writeBatch("ip", before, plan.name, this.o.onWrite));
    outcomes.push(await writeBatch("ip", node, this.o.netns, this.o.onWrite));
    outcomes.push(await writeBatch("ip", after, plan.name, this.o.onWrite));
    assertBatches(outcomes);
  }

  async remove(name: string): Promise<void> {
    if (!isNetnsName(name)) throw new KernelPlanError(`"${name}" is not a sandbox name`);
    const [nodeLinks, namespaces] = await Promise.all([readLinks(this.o.netns), this.namespaces()]);
    // host ends first: that cuts the sandbox off at once, even if a process keeps its namespace alive
    const lines = [...(hostEnds(nodeLinks).get(name)?.values() ?? [])].map((h) => ({ text: `link del dev ${h.ifname}`, tolerate: "missing" as const }));
    assertBatches([await writeBatch("ip", lines, this.o.netns, this.o.onWrite)]);
    if (namespaces.has(name)) await writeCommand("ip", ["netns", "del", name], "missing", this.o.onWrite);
    removeSandboxEtc(this.etcDir, name);
    this.trust.forget(name);
  }

  async establishedConnections(name: string): Promise<number> {
    if (!isNetnsName(name)) throw new KernelPlanError(`"${name}" is not a sandbox name`);
    const out = await runIn(name, ["ss", "-Htn", "state", "established"]).catch(() => "");
    return out.split("\n").filter(Boolean).length;
  }

  async list(prefix: string): Promise<SandboxState[]> {
    const [nodeLinks, namespaces] = await Promise.all([readLinks(this.o.netns), this.namespaces()]);
    const ends = hostEnds(nodeLinks);
    const mine = [...namespaces].filter((n) => n.startsWith(prefix));
    const states = await mapLimit(mine, LIST_CONCURRENCY, async (name): Promise<SandboxState> => {
      let links: Map<string, KernelLink>;
      try {
        links = await readLinks(name);
      } catch (e) {
        if (!isDeadNamespace(e)) throw e;
        links = new Map();
      }
      const interfaces = [...links.values()]
        .filter((s) => s.kind === "veth")
        .map((s): SandboxInterface => {
          const h = ends.get(name)?.get(s.ifname);
          const vni = h && h.ifindex === s.peerIndex ? Number(BRIDGE.exec(h.master ?? "")?.[1] ?? 0) : 0;
          return { ifname: s.ifname, vni, addr: ipv4Cidrs(s)[0] ?? "", mac: s.mac, ...(s.mtu !== OVERLAY_MTU ? { mtu: s.mtu } : {}) };
        })
        .sort((a, b) => compareNames(a.ifname, b.ifname));
      return { taskId: name.slice(prefix.length), name, interfaces };
    });
    // host ends whose namespace name is gone: listed so that remove() can take them away
    for (const name of ends.keys()) {
      if (name.startsWith(prefix) && !namespaces.has(name)) states.push({ taskId: name.slice(prefix.length), name, interfaces: [] });
    }
    return states.sort((a, b) => compareNames(a.name, b.name));
  }
}
