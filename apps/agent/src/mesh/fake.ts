// An in-memory routing mesh for unit tests of the agent: keeps the ingress
// sandbox, the published ports and the task filters it was given, dumps them as text.

import type { PublishedPort, TaskIngressFilter } from "./plan.ts";
import type { MeshDriver } from "./types.ts";

const portLine = (kind: string, p: PublishedPort) =>
  `${kind} ${p.protocol}/${p.port} -> ${p.to}:${p.targetPort} (${p.service})${p.proxyProtocol ? ` proxy-protocol ${p.proxyProtocol}` : ""}`;

export class FakeMesh implements MeshDriver {
  private readonly ingress = new Map<string, string>();
  private published: string[] = [];
  private readonly filters = new Map<string, TaskIngressFilter>();
  private failures: Error[] = [];

  /** Makes the next publish() fail with this error. */
  failNextPublish(error = new Error("fake mesh: injected failure")): void {
    this.failures.push(error);
  }

  async ensureIngress(sandbox: string, subnet: string): Promise<void> {
    this.ingress.set(sandbox, subnet);
  }

  async publish(mesh: readonly PublishedPort[], host: readonly PublishedPort[]): Promise<void> {
    const failure = this.failures.shift();
    if (failure) throw failure;
    this.published = [...mesh.map((p) => portLine("mesh", p)), ...host.map((p) => portLine("host", p))];
  }

  async filterTask(sandbox: string, filter: TaskIngressFilter | undefined): Promise<void> {
    if (filter) this.filters.set(sandbox, structuredClone(filter));
  }

  forget(sandbox: string): void {
    this.ingress.delete(sandbox);
    this.filters.delete(sandbox);
  }

  close(): void {}

  dump(): string {
    const byName = <T>(m: Map<string, T>) => [...m.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
    return [
      ...byName(this.ingress).map(([sandbox, subnet]) => `ingress ${sandbox} routes ${subnet}`),
      ...this.published,
      ...byName(this.filters).map(
        ([sandbox, f]) => `filter ${sandbox} ${f.ifname} accepts ${f.accept.map((a) => `${a.protocol}/${a.port}`).join(" ") || "nothing"} from ${f.from.join(" ") || "nobody"}`,
      ),
    ]
      .map((l) => `${l}\n`)
      .join("");
  }
}
