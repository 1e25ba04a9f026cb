// Overlay key rotation with several managers. The leader rotates
// (security/overlay-keys.ts) and each step is a commit of the setting; every
// manager, the leader too, sees that commit, sends the new keys down the
// sessions it holds (Dispatcher.publishKeys) and, once each of them applied
// them or left, puts KEYS_PREFIX<managerId> = a digest of the keys on its
// lease. The leader's step is done when every reachable manager's digest is
// the current one.
//
// Why per manager and not per node: it is today's rule ("every session
// applied them, or lost its session"), kept by each manager for its own
// sessions. A node whose session ended, or whose manager died, gets the
// current keys with the first view of its next session, wherever it opens.
// A manager that dies stops counting once its lease expires; one that
// starts acknowledges once it has sent the keys to the sessions it has then
// (none yet, at its start).

import type { OverlayKeySet } from "@vipmesh/core";
import { createHash } from "node:crypto";
import type { Etcd3 } from "@vipmesh/etcd";
import type { ClusterStore } from "../store/cluster-store.ts";
import { OVERLAY_KEYS_SETTING } from "../security/overlay-keys.ts";
import type { ManagerDirectory } from "./directory.ts";
import type { ManagerLease } from "./manager-lease.ts";
import { PrefixWatch } from "./prefix-watch.ts";

export const KEYS_PREFIX = "/vipmesh/ha/keys/";

/** Names a key set without saying anything of its secrets. */
export const keysDigest = (keys: OverlayKeySet): string =>
  createHash("sha256").update(JSON.stringify(keys)).digest("hex").slice(0, 32);

export class KeyAcks {
  private readonly watch: PrefixWatch;
  /** The digest this manager's sessions all hold, once they do. */
  private applied: string | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly client: Etcd3,
    private readonly lease: ManagerLease,
    private readonly managerId: string,
    private readonly store: ClusterStore,
    private readonly directory: ManagerDirectory,
    /** The keys as the store holds them now. */
    private readonly current: () => OverlayKeySet,
    /** Sends keys down this manager's sessions; resolves once each applied them or left. */
    private readonly publish: (keys: OverlayKeySet) => Promise<void>,
  ) {
    this.watch = new PrefixWatch(client, KEYS_PREFIX, () => this.check());
  }

  async start(): Promise<void> {
    this.unsubscribe.push(
      this.store.subscribe((c) => {
        if (c.settings.includes(OVERLAY_KEYS_SETTING)) void this.apply();
      }),
      this.lease.onGranted(() => void this.put()),
      this.directory.onChange(() => this.check()),
    );
    await this.watch.start();
    void this.apply();
  }

  stop(): void {
    for (const u of this.unsubscribe) u();
    this.watch.stop();
  }

  /** The leader's KeyPublisher: resolves once every reachable manager's sessions hold `keys`. */
  everyManagerHolds(keys: OverlayKeySet): Promise<void> {
    const digest = keysDigest(keys);
    return new Promise((resolve) => {
      const done = () => {
        if (!this.allHold(digest)) return;
        this.waiters.delete(done);
        resolve();
      };
      this.waiters.add(done);
      done();
    });
  }

  private allHold(digest: string): boolean {
    return this.directory.list().every((m) => !m.reachable || this.watch.entries.get(m.id)?.value === digest);
  }

  private check(): void {
    for (const w of [...this.waiters]) w();
  }

  /** Sends the store's keys down this manager's sessions, then says so. */
  private async apply(): Promise<void> {
    const keys = this.current();
    const digest = keysDigest(keys);
    await this.publish(keys);
    if (keysDigest(this.current()) !== digest) return; // newer keys came meanwhile: their apply() acknowledges
    this.applied = digest;
    await this.put();
  }

  private async put(): Promise<void> {
    const digest = this.applied;
    if (digest !== undefined) await this.lease.put(KEYS_PREFIX + this.managerId, digest, () => this.applied === digest);
  }
}
