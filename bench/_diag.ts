// temporary diagnostics: in-process run with counters on dispatcher flushes, commits and reconciles
import { performance } from "node:perf_hooks";
import { Dispatcher } from "../apps/manager/src/dispatcher.ts";
import { ClusterStore } from "../apps/manager/src/store/cluster-store.ts";
import { Orchestrator } from "../apps/manager/src/orchestrator.ts";
import { Cluster } from "../apps/manager/src/cluster.ts";
type Rec = { kind: string; at: number; ms: number; info?: unknown };
const recs: Rec[] = [];
let scaleStart = Infinity;
const wrap = (proto: any, name: string, kind: string, info?: (self: any, args: any[]) => unknown) => {
  const orig = proto[name];
  proto[name] = function (this: any, ...args: any[]) {
    const i = info?.(this, args);
    const t0 = performance.now();
    try { return orig.apply(this, args); } finally { recs.push({ kind, at: t0, ms: performance.now() - t0, info: i }); }
  };
};
let disp: any; let sessions: any[] = [];
if (process.env.PATCH) {
  (Dispatcher.prototype as any).flush = function (this: any) {
    this.flushScheduled = false;
    const dirty = this.dirty;
    this.dirty = { nodes: new Set(), networks: new Set(), services: new Set(), tasks: new Set(), taskServices: new Set() };
    let all = dirty.nodes.size > 0 || dirty.networks.size > 0;
    const nets = new Set<string>(); const nodes = new Set<string>();
    for (const id of dirty.tasks) { const t = this.store.task(id); if (t) { nodes.add(t.nodeId); for (const a of t.networks) nets.add(a.networkId); } else all = true; }
    for (const id of dirty.services) { const s = this.store.service(id); if (s) for (const n of s.spec.networks) nets.add(n.target); else all = true; }
    for (const s of this.sessions.values()) {
      if (!all && !nodes.has(s.nodeId)) {
        let hit = false;
        for (const n of s.view.networks.keys()) if (nets.has(n)) { hit = true; break; }
        if (!hit) for (const id of dirty.tasks) if (s.view.tasks.has(id)) { hit = true; break; }
        if (!hit) continue;
      }
      const delta = refreshNetworkView(this.store, s.nodeId, s.view, dirty);
      if (isEmptyDelta(delta)) continue;
      const involved = new Set<string>();
      for (const x of delta.services) involved.add(x.id);
      for (const x of delta.removedServices) involved.add(x);
      for (const x of delta.endpoints) involved.add(x.serviceId);
      for (const x of delta.tasks) involved.add(x.serviceId);
      for (const id of [...dirty.services, ...dirty.taskServices]) if (s.serviceVersions.has(id)) involved.add(id);
      this.send(s, delta, false, involved);
    }
    this.emit("progress");
  };
}
wrap(Dispatcher.prototype, "flush", "flush", (d) => (disp = d, sessions = [...d.sessions.values()], { sessions: d.sessions.size, tasks: d.dirty.tasks.size, services: d.dirty.services.size, nodes: d.dirty.nodes.size, networks: d.dirty.networks.size }));
wrap(ClusterStore.prototype, "update", "update");
wrap(Orchestrator.prototype, "reconcile", "reconcile");
const origUpd = (Cluster.prototype as any).updateService;
(Cluster.prototype as any).updateService = function (...a: any[]) { if (scaleStart === Infinity) scaleStart = performance.now(); return origUpd.apply(this, a); };
process.on("exit", () => {
  micro();
  for (const phase of ["create", "scale"]) {
    const sel = recs.filter((r) => (phase === "scale" ? r.at >= scaleStart : r.at < scaleStart));
    const by = new Map<string, Rec[]>();
    for (const r of sel) by.set(r.kind, [...(by.get(r.kind) ?? []), r]);
    for (const [k, rs] of by) {
      const tot = rs.reduce((a, r) => a + r.ms, 0);
      const sorted = rs.map((r) => r.ms).sort((a, b) => a - b);
      console.error(`${phase} ${k}: n=${rs.length} total=${tot.toFixed(0)}ms mean=${(tot / rs.length).toFixed(3)} p50=${sorted[Math.floor(rs.length / 2)]!.toFixed(3)} max=${sorted[rs.length - 1]!.toFixed(2)}`);
    }
    const fl = sel.filter((r) => r.kind === "flush");
    const agg = { tasks: 0, services: 0, nodes: 0, networks: 0 };
    for (const r of fl) for (const k of Object.keys(agg) as (keyof typeof agg)[]) agg[k] += (r.info as any)[k];
    console.error(`${phase} flush dirty totals`, agg);
  }
});
process.argv.splice(2, 0, "--in-process");
await import("./control-plane.ts");

import { isEmptyDelta, refreshNetworkView, nodeNetworkIds, computeNetworkView, diffNetworkViews, emptyView } from "@vipmesh/core";
function micro() {
  const store = disp.store;
  const time = (label: string, n: number, fn: () => void) => {
    for (let i = 0; i < 3; i++) fn();
    const t0 = performance.now(); for (let i = 0; i < n; i++) fn(); const per = (performance.now() - t0) / n;
    console.error(`micro ${label}: ${(per * 1000).toFixed(1)} us`);
  };
  const tasks = store.list("task");
  const svc = store.list("service")[0];
  const one = tasks[0];
  const dirtyTask = { nodes: new Set(), networks: new Set(), services: new Set(), tasks: new Set([one.id]) };
  const dirtySvc = { nodes: new Set(), networks: new Set(), services: new Set([svc.id]), tasks: new Set() };
  console.error(`sessions ${sessions.length}; tasks in store ${tasks.length}; per-node tasks`, [...store.tasksOfNode(sessions[0].nodeId)].length, "view endpoints", sessions[0].view.endpoints.size, "view services", sessions[0].view.services.size);
  time("nodeNetworkIds x100 sessions", 200, () => { for (const s of sessions) nodeNetworkIds(store, s.nodeId); });
  time("refresh(1 task) x100 sessions", 200, () => { for (const s of sessions) refreshNetworkView(store, s.nodeId, s.view, dirtyTask); });
  time("refresh(1 service) x100 sessions", 200, () => { for (const s of sessions) refreshNetworkView(store, s.nodeId, s.view, dirtySvc); });
  {
    const per: [number, string, boolean][] = [];
    for (const s of sessions) {
      const nets = nodeNetworkIds(store, s.nodeId);
      const sameNets = nets.size === s.view.networks.size && [...nets].every((id: string) => s.view.networks.has(id));
      const t0 = performance.now(); for (let i = 0; i < 20; i++) refreshNetworkView(store, s.nodeId, s.view, dirtyTask); per.push([(performance.now() - t0) / 20 * 1000, s.nodeId.slice(0, 6), sameNets]);
    }
    per.sort((a, b) => b[0] - a[0]);
    console.error("slowest sessions (us, node, sameNets):", per.slice(0, 8).map((x) => `${x[0].toFixed(0)} ${x[1]} ${x[2]}`).join(" | "));
    console.error("fastest:", per.slice(-3).map((x) => `${x[0].toFixed(0)} ${x[2]}`).join(" | "));
    console.error("task", one.id.slice(0,6), "node", one.nodeId.slice(0,6), "net", one.networks[0].networkId.slice(0,6));
  }
  time("computeNetworkView 1 node", 50, () => computeNetworkView(store, sessions[0].nodeId));
  const v = computeNetworkView(store, sessions[0].nodeId);
  time("diffNetworkViews(empty, view) 1 node", 50, () => diffNetworkViews(emptyView(), v));
  time("diffNetworkViews(view, view) 1 node", 50, () => diffNetworkViews(v, v));
}
