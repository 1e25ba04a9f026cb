// The managers of a cluster on etcd: each writes its entry at start
// (MANAGERS_PREFIX<id>, kept until `vipmesh node rm` removes it) and holds
// ALIVE_PREFIX<id> on its lease while it runs, so a manager that dies shows
// unreachable within the lease's TTL. The leader is Leadership's.

import { notFound, precondition } from "@vipmesh/core";
import type { Etcd3 } from "@vipmesh/etcd";
import type { ManagerDirectory, ManagerInfo } from "./directory.ts";
import type { Leadership } from "./leadership.ts";
import type { ManagerLease } from "./manager-lease.ts";
import { PrefixWatch } from "./prefix-watch.ts";

export const MANAGERS_PREFIX = "/vipmesh/ha/managers/";
export const ALIVE_PREFIX = "/vipmesh/ha/alive/";
const DEADLINE_MS = 3000;
const RETRY_MS = 500;

type Entry = Omit<ManagerInfo, "reachable" | "leader">;

export class EtcdDirectory implements ManagerDirectory {
  private readonly managers: PrefixWatch;
  private readonly alive: PrefixWatch;
  private readonly listeners = new Set<() => void>();
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly client: Etcd3,
    private readonly lease: ManagerLease,
    private readonly leadership: Pick<Leadership, "leaderId" | "onChange">,
    /** This manager as it runs now (its addresses are known once it listens). */
    private readonly me: () => Entry,
  ) {
    this.managers = new PrefixWatch(client, MANAGERS_PREFIX, () => this.notify());
    this.alive = new PrefixWatch(client, ALIVE_PREFIX, () => this.notify());
  }

  /** Writes this manager's entry and starts watching the others; rejects if etcd cannot be written now. */
  async start(): Promise<void> {
    const me = this.me();
    await this.client.put(MANAGERS_PREFIX + me.id).value(JSON.stringify(me)).options({ deadline: Date.now() + DEADLINE_MS });
    this.unsubscribe.push(
      this.lease.onGranted((lease) => void this.markAlive(lease)),
      this.leadership.onChange(() => this.notify()),
    );
    await this.managers.start();
    await this.alive.start();
    const lease = this.lease.id();
    if (lease !== undefined) void this.markAlive(lease);
  }

  stop(): void {
    for (const u of this.unsubscribe) u();
    this.managers.stop();
    this.alive.stop();
  }

  self(): ManagerInfo {
    return { ...this.me(), reachable: true, leader: this.leadership.leaderId() === this.me().id };
  }

  list(): ManagerInfo[] {
    const self = this.self();
    const others: ManagerInfo[] = [];
    for (const [id, e] of this.managers.entries) {
      if (id === self.id) continue;
      const entry = JSON.parse(e.value) as Entry;
      others.push({ ...entry, reachable: this.alive.entries.has(id), leader: this.leadership.leaderId() === id });
    }
    return [self, ...others].sort((a, b) => a.hostname.localeCompare(b.hostname) || a.id.localeCompare(b.id));
  }

  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Forgets a manager (`vipmesh node rm`): refused while it runs, unless forced (it then stays unlisted until it restarts). */
  async remove(id: string, force: boolean): Promise<void> {
    const m = this.list().find((x) => x.id === id);
    if (!m) throw notFound(`manager ${id} not found`);
    if (m.reachable && !force) {
      throw precondition(`manager ${m.hostname} (${m.id}) is running: stop it first, or remove it with --force`);
    }
    await this.client.delete().key(MANAGERS_PREFIX + id).options({ deadline: Date.now() + DEADLINE_MS });
    if (force) await this.client.delete().key(ALIVE_PREFIX + id).options({ deadline: Date.now() + DEADLINE_MS });
  }

  private async markAlive(lease: string): Promise<void> {
    try {
      await this.client.put(ALIVE_PREFIX + this.me().id).value("").lease(lease).options({ deadline: Date.now() + DEADLINE_MS });
    } catch {
      // a lease that failed is replaced, and the new one marks this manager alive; else try again
      if (this.lease.id() === lease) setTimeout(() => void this.markAlive(lease), RETRY_MS).unref();
    }
  }

  private notify(): void {
    for (const fn of this.listeners) fn();
  }
}
