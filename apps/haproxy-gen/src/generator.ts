// haproxy-gen's loop: the cluster from the manager's Watch stream (a snapshot,
// then every change), rendered and applied (haproxy.ts) — once, or on every
// change. A render or validation failure keeps the last good config serving
// and is reported: thrown in one-shot mode, logged and written to the status
// file in watch mode, until a good render clears it. A lost manager keeps the
// last config too; the stream is opened again with backoff, and the next
// snapshot replaces everything known.

import { type ClientCredentials, clusterClient, type ClusterServiceClient, type wire } from "@vipmesh/api";
import { writeFileSync } from "node:fs";
import { type Applied, ConfigApplier } from "./haproxy.ts";
import { type ClusterSnapshot, type RuntimeSettings, type TemplateData, templateData } from "./model.ts";
import { loadTemplate } from "./render.ts";

export interface GeneratorOptions {
  /** The managers' addresses (as every client command finds them): the watch moves to the next when one is lost. */
  managers: readonly string[];
  /** Its identity: a read-only certificate is enough. */
  credentials: ClientCredentials;
  output: string;
  /** A Handlebars template file; the default one ships with the app. */
  template?: string;
  masterSocket?: string;
  reloadCommand?: string;
  runtime: RuntimeSettings;
  haproxy?: string;
  log?: (line: string) => void;
}

/** What the last render came to, in `<output>.status` as JSON: `ok` false with the error until a good render. */
export interface GeneratorStatus {
  ok: boolean;
  error: string;
  version: number;
  applied: Applied | "";
  at: string;
}

/** The cluster as the Watch stream tells it: a snapshot, then each change applied. */
class ClusterState {
  version = 0;
  readonly nodes = new Map<string, wire.Node>();
  readonly services = new Map<string, wire.Service>();
  readonly tasks = new Map<string, wire.Task>();

  take(m: wire.WatchMessage): void {
    if (m.snapshot) {
      this.nodes.clear();
      this.services.clear();
      this.tasks.clear();
      for (const n of m.snapshot.nodes) this.nodes.set(n.id, n);
      for (const s of m.snapshot.services) this.services.set(s.id, s);
      for (const t of m.snapshot.tasks) this.tasks.set(t.id, t);
    }
    for (const e of m.events) {
      const [map, obj] = e.node ? [this.nodes, e.node] : e.service ? [this.services, e.service] : e.task ? [this.tasks, e.task] : [undefined, undefined];
      if (!map || !obj) continue;
      if (e.action === "remove") map.delete(obj.id);
      else (map as Map<string, typeof obj>).set(obj.id, obj);
    }
    this.version = Number(m.version);
  }

  snapshot(): ClusterSnapshot {
    return { version: this.version, nodes: [...this.nodes.values()], services: [...this.services.values()], tasks: [...this.tasks.values()] };
  }
}

export class Generator {
  private readonly state = new ClusterState();
  private readonly applier: ConfigApplier;
  private readonly log: (line: string) => void;
  private client: ClusterServiceClient | undefined;
  private stream: ReturnType<ClusterServiceClient["watch"]> | undefined;
  private stopped = false;
  private pending: NodeJS.Timeout | undefined;
  private rendering: Promise<void> = Promise.resolve();
  /** The data last rendered (its servers keep their slots in the next), and the warnings already said. */
  private previous: TemplateData | undefined;
  private readonly warned = new Set<string>();
  status: GeneratorStatus = { ok: true, error: "", version: 0, applied: "", at: "" };

  constructor(private readonly o: GeneratorOptions) {
    this.applier = new ConfigApplier(o);
    this.log = o.log ?? ((line) => console.error(`haproxy-gen: ${line}`));
  }

  /** Renders the cluster once and applies it; throws what went wrong. */
  async once(): Promise<Applied> {
    const manager = this.o.managers[0]!;
    const client = clusterClient(manager, this.o.credentials);
    try {
      const first = await new Promise<wire.WatchMessage>((resolve, reject) => {
        const stream = client.watch({});
        stream.on("data", (m: wire.WatchMessage) => {
          resolve(m);
          stream.cancel();
        });
        stream.on("error", (e: Error) => reject(new Error(`cannot watch the cluster at ${manager}: ${e.message}`)));
      });
      this.state.take(first);
      return await this.render();
    } finally {
      client.close();
    }
  }

  /** Follows the cluster until stop(), re-rendering on every change. */
  watch(): void {
    this.connect(0, 500);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.pending);
    this.stream?.cancel();
    this.client?.close();
    await this.rendering;
  }

  /** Watches through the `i`th manager; a lost one gives way to the next (round robin), after a pause. */
  private connect(i: number, backoffMs: number): void {
    if (this.stopped) return;
    const manager = this.o.managers[i % this.o.managers.length]!;
    this.client?.close();
    this.client = clusterClient(manager, this.o.credentials);
    let got = false;
    const stream = this.client.watch({});
    this.stream = stream;
    stream.on("data", (m: wire.WatchMessage) => {
      if (!got) this.log(`watching the cluster at ${manager}`);
      got = true;
      this.state.take(m);
      this.schedule();
    });
    stream.on("error", () => {}); // "end"/"close" follow; the last config keeps serving
    stream.on("close", () => {
      if (this.stopped) return;
      const wait = got ? 500 : backoffMs;
      const next = this.o.managers[(i + 1) % this.o.managers.length]!;
      this.log(`lost the manager at ${manager}; the last config keeps serving; trying ${next} in ${wait} ms`);
      setTimeout(() => this.connect(i + 1, got ? 500 : Math.min(backoffMs * 2, 10_000)), wait).unref();
    });
  }

  /** Changes that arrive together are rendered once. */
  private schedule(): void {
    if (this.pending) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      this.rendering = this.rendering.then(() => this.render().then(() => undefined, () => undefined));
    }, 20);
  }

  private async render(): Promise<Applied> {
    const snapshot = this.state.snapshot();
    try {
      const data = templateData(snapshot, this.o.runtime, this.previous);
      for (const w of data.warnings) if (!this.warned.has(w)) this.log(`warning: ${w}`);
      this.warned.clear();
      for (const w of data.warnings) this.warned.add(w);
      // read each time: a fixed custom template is taken at the next change
      const text = loadTemplate(this.o.template)(data);
      const applied = await this.applier.apply(text, data);
      this.previous = data;
      if (!this.status.ok) this.log(`cluster version ${snapshot.version}: rendered and applied (${applied}); the error is cleared`);
      else if (applied !== "unchanged") this.log(`cluster version ${snapshot.version}: ${applied}`);
      this.setStatus({ ok: true, error: "", version: snapshot.version, applied, at: new Date().toISOString() });
      return applied;
    } catch (e) {
      const error = e instanceof Error ? e.message : String(e);
      this.log(`cluster version ${snapshot.version}: not applied, the last good config keeps serving: ${error}`);
      this.setStatus({ ok: false, error, version: snapshot.version, applied: "", at: new Date().toISOString() });
      throw e;
    }
  }

  private setStatus(s: GeneratorStatus): void {
    this.status = s;
    writeFileSync(`${this.o.output}.status`, `${JSON.stringify(s)}\n`);
  }
}
