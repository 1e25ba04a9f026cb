// This manager's etcd lease: everything that must vanish when the manager
// does (its leadership, its "alive" key, the liveness keys of the nodes whose
// sessions it holds) is put on it. TTL 3 s, renewed every second. When
// renewals have failed for 2 s the lease counts as lost at once (listeners
// step down) although etcd keeps it up to 1 s longer: by the time another
// manager can take over, this one has stopped. A lost lease is replaced by
// a new one as soon as etcd grants it, and listeners put their keys again.

import type { Etcd3 } from "@vipmesh/etcd";

type Lease = ReturnType<Etcd3["lease"]>;

export const LEASE_TTL_S = 3;
export const RENEW_EVERY_MS = 1000;
/** Renewals failing this long mean the lease is lost: 1 s before etcd can expire it. */
export const LOST_AFTER_MS = 2000;
const WATCHDOG_MS = 100;
const RETRY_GRANT_MS = 500;
/** A renewal or grant taking longer is a failure (etcd without quorum answers nothing). */
const CALL_DEADLINE_MS = 1500;
/** A put on the lease taking longer fails, and is tried again after PUT_RETRY_MS. */
const PUT_DEADLINE_MS = 3000;
const PUT_RETRY_MS = 500;

export class ManagerLease {
  private lease: Lease | undefined;
  private leaseId: string | undefined;
  /** When the last renewal that etcd acknowledged was sent (its TTL counts from no earlier). */
  private renewedAt = 0;
  private renewTimer: NodeJS.Timeout | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly grantedFns = new Set<(id: string) => void>();
  private readonly lostFns = new Set<(why: string) => void>();

  constructor(private readonly client: Etcd3) {}

  /** The lease's ID while it is held, else undefined. */
  id(): string | undefined {
    return this.leaseId;
  }

  /** A new lease is held: put the keys that live on it. */
  onGranted(fn: (id: string) => void): () => void {
    this.grantedFns.add(fn);
    return () => this.grantedFns.delete(fn);
  }

  /** The lease is lost (or about to expire): whatever it stood for ends now. */
  onLost(fn: (why: string) => void): () => void {
    this.lostFns.add(fn);
    return () => this.lostFns.delete(fn);
  }

  start(): void {
    void this.grant();
  }

  /**
   * Puts key = value on the lease held now, tried again while that lease
   * lasts and `wanted()` holds; with no lease, nothing: the caller puts it
   * again from onGranted.
   */
  async put(key: string, value: string, wanted: () => boolean): Promise<void> {
    const lease = this.leaseId;
    if (lease === undefined || !wanted()) return;
    try {
      await this.client.put(key).value(value).lease(lease).options({ deadline: Date.now() + PUT_DEADLINE_MS });
    } catch {
      if (this.leaseId === lease) setTimeout(() => void this.put(key, value, wanted), PUT_RETRY_MS).unref();
    }
  }

  /** Revokes the lease: its keys go at once, so another manager takes over without waiting for the TTL. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retry);
    const lease = this.lease;
    this.drop();
    await lease?.revoke({ deadline: Date.now() + CALL_DEADLINE_MS }).catch(() => {});
  }

  private async grant(): Promise<void> {
    if (this.stopped) return;
    const sent = Date.now();
    const lease = this.client.lease(LEASE_TTL_S, { autoKeepAlive: false, deadline: Date.now() + CALL_DEADLINE_MS });
    // etcd said the lease is gone (a renewal answered that it expired): no point waiting for the watchdog
    lease.on("lost", () => {
      if (this.lease === lease) this.lose("etcd expired this manager's lease");
    });
    let id: string;
    try {
      id = await lease.grant();
    } catch {
      lease.release();
      if (!this.stopped) this.retry = setTimeout(() => void this.grant(), RETRY_GRANT_MS);
      return;
    }
    if (this.stopped) {
      await lease.revoke().catch(() => {});
      return;
    }
    this.lease = lease;
    this.leaseId = id;
    this.renewedAt = sent;
    this.renewTimer = setInterval(() => this.renew(lease), RENEW_EVERY_MS);
    this.watchdog = setInterval(() => {
      if (Date.now() - this.renewedAt > LOST_AFTER_MS) this.lose(`etcd acknowledged no lease renewal for ${LOST_AFTER_MS / 1000} s`);
    }, WATCHDOG_MS);
    for (const fn of this.grantedFns) fn(id);
  }

  private renew(lease: Lease): void {
    const sent = Date.now();
    lease.keepaliveOnce({ deadline: sent + CALL_DEADLINE_MS }).then(
      () => {
        if (this.lease === lease) this.renewedAt = Math.max(this.renewedAt, sent);
      },
      () => {}, // the watchdog counts the time without renewal; an expired lease says so by "lost"
    );
  }

  private drop(): void {
    clearInterval(this.renewTimer);
    clearInterval(this.watchdog);
    this.lease?.release();
    this.lease = undefined;
    this.leaseId = undefined;
  }

  private lose(why: string): void {
    const lease = this.lease;
    this.drop();
    // best effort: if etcd hears it, the keys go now rather than at the TTL
    void lease?.revoke({ deadline: Date.now() + CALL_DEADLINE_MS }).catch(() => {});
    for (const fn of this.lostFns) fn(why);
    void this.grant();
  }
}
