// Which manager leads: the one whose ID is in LEADER_KEY, a key created only
// while absent (create_revision == 0) on the creator's lease. Every manager
// watches it and campaigns when it goes. The leader steps down at once when
// its lease is lost (renewals failing 2 s, before anyone else could take
// over at the lease's 3 s TTL) and when the key is not its own.

import type { Etcd3 } from "@vipmesh/etcd";
import type { ManagerLease } from "./manager-lease.ts";
import { PrefixWatch } from "./prefix-watch.ts";

export const LEADER_KEY = "/vipmesh/ha/leader";
const CAMPAIGN_DEADLINE_MS = 1500;
const CAMPAIGN_RETRY_MS = 500;

export class Leadership {
  private leading = false;
  private leader: string | undefined;
  private campaigning = false;
  private retry: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly watch: PrefixWatch;
  private readonly listeners = new Set<() => void>();
  private readonly unsubscribe: (() => void)[] = [];

  constructor(
    private readonly client: Etcd3,
    private readonly lease: ManagerLease,
    readonly selfId: string,
    private readonly log: (line: string) => void = () => {},
  ) {
    this.watch = new PrefixWatch(client, LEADER_KEY, () => this.sync());
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The leader's manager ID as etcd last said, or undefined while there is none. */
  leaderId(): string | undefined {
    return this.leader;
  }

  /** After this manager gained or lost leadership, or the leader changed. */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Watches the leader key (rejects if etcd cannot be read) and campaigns whenever the lease allows. */
  async start(): Promise<void> {
    this.unsubscribe.push(
      this.lease.onGranted(() => void this.campaign()),
      this.lease.onLost((why) => this.stepDown(why)),
    );
    await this.watch.start();
    void this.campaign();
  }

  /** Stops campaigning; a leader steps down (its key goes with the lease, which the caller revokes). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.retry);
    for (const u of this.unsubscribe) u();
    this.watch.stop();
    this.stepDown("the manager is stopping");
  }

  private sync(): void {
    const key = this.watch.entries.get("");
    const before = this.leader;
    this.leader = key?.value;
    const ours = key !== undefined && key.value === this.selfId && key.lease === this.lease.id();
    if (this.leading && !ours) this.stepDown(key ? `manager ${key.value} holds the leader key` : "the leader key is gone");
    else if (!this.leading && ours) this.become();
    else if (before !== this.leader) this.notify();
    if (!key) void this.campaign();
  }

  private async campaign(): Promise<void> {
    const lease = this.lease.id();
    if (this.stopped || this.leading || this.campaigning || lease === undefined) return;
    this.campaigning = true;
    try {
      const res = await this.client
        .if(LEADER_KEY, "Create", "==", 0)
        .then(this.client.put(LEADER_KEY).value(this.selfId).lease(lease))
        .options({ deadline: Date.now() + CAMPAIGN_DEADLINE_MS })
        .commit();
      if (res.succeeded && this.lease.id() === lease && !this.stopped) this.become();
    } catch {
      // etcd did not answer: try again while nobody is known to lead
    } finally {
      this.campaigning = false;
    }
    // the key may have gone while the campaign was under way: the watch's campaign was skipped then
    if (!this.leading && !this.stopped && !this.watch.entries.has("")) {
      clearTimeout(this.retry);
      this.retry = setTimeout(() => void this.campaign(), CAMPAIGN_RETRY_MS);
    }
  }

  private become(): void {
    if (this.leading) return;
    this.leading = true;
    this.leader = this.selfId;
    this.log("leadership: this manager leads");
    this.notify();
  }

  private stepDown(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    if (this.leader === this.selfId) this.leader = undefined;
    this.log(`leadership: stepped down: ${why}`);
    this.notify();
  }

  private notify(): void {
    for (const fn of this.listeners) fn();
  }
}

/** Work only the leader does: started when this manager gains leadership, stopped (in reverse) when it loses it. */
export interface LeaderLoop {
  start(): void;
  stop(): void;
}

/** Runs `loops` while this manager leads; returns what stops following leadership (and the loops, if they run). */
export function whileLeading(leadership: Pick<Leadership, "isLeader" | "onChange">, loops: readonly LeaderLoop[]): () => void {
  let running = false;
  const follow = () => {
    if (leadership.isLeader() === running) return;
    running = !running;
    if (running) for (const l of loops) l.start();
    else for (const l of [...loops].reverse()) l.stop();
  };
  const unsubscribe = leadership.onChange(follow);
  follow();
  return () => {
    unsubscribe();
    if (running) for (const l of [...loops].reverse()) l.stop();
    running = false;
  };
}
