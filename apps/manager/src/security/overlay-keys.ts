// The keys of the encrypted overlays: made here (AES-256-GCM key + salt, 36
// random bytes each), kept in the store's settings, sent to agents only down
// their mutual-TLS sessions, and rotated on a schedule (default 12 h) without
// dropping traffic, in three steps, each applied by every node that holds an
// encrypted network before the next starts:
//
//   1. the new key is added: every node can receive with it, all still send with the old;
//   2. senders switch to the new key;
//   3. the old key is removed.
//
// A rotation interrupted by a manager restart goes on from the step it had reached.

import { timerAt, type Timer } from "@vipmesh/api";
import { OVERLAY_KEY_BYTES, type OverlayKey, type OverlayKeySet } from "@vipmesh/core";
import { randomBytes } from "node:crypto";
import type { Settings } from "../store/cluster-store.ts";

const DEFAULT_KEY_ROTATION_MS = 12 * 3600_000;
/** The store setting that holds them. */
export const OVERLAY_KEYS_SETTING = "overlay-keys";

interface Stored extends OverlayKeySet {
  /** When the last rotation finished (or the first key was made), ms since the epoch. */
  rotatedAt: number;
  /** A rotation under way: the step it has reached. */
  step?: "added" | "switched";
}

/** Where keys go: resolves once every node that needs them applied them (or left). */
export type KeyPublisher = (keys: OverlayKeySet) => Promise<void>;

/** After a failed step (the store could not be written), the rotation is tried again this much later. */
const RETRY_MS = 10_000;

/**
 * The keys as the store holds them, and their rotation. Only the leader
 * rotates (start on gaining leadership, stop on losing it); with several
 * managers the others learn each step from the store's commits (ha/key-acks.ts).
 */
export class OverlayKeys {
  private timer: Timer | undefined;
  /** Which start() the rotation under way belongs to: a stop() ends it at its next step. */
  private term = 0;
  private retryAt = 0;

  private constructor(
    private readonly settings: Settings,
    private readonly rotationMs: number,
    private readonly log: (line: string) => void,
  ) {}

  /** The keys of the cluster's store, the first one made on the cluster's first start. */
  static async open(settings: Settings, rotationMs = DEFAULT_KEY_ROTATION_MS, log: (line: string) => void = () => {}): Promise<OverlayKeys> {
    await settings.init(OVERLAY_KEYS_SETTING, () => JSON.stringify({ keys: [newKey(1)], txKeyId: 1, rotatedAt: Date.now() } satisfies Stored));
    return new OverlayKeys(settings, rotationMs, log);
  }

  /** The keys nodes hold now (as the last commit this manager saw left them). */
  current(): OverlayKeySet {
    const s = this.read();
    return { keys: s.keys.map((k) => ({ ...k })), txKeyId: s.txKeyId };
  }

  /** Rotates on schedule (finishing first a rotation a restart or another leader left under way), publishing each step. */
  start(publish: KeyPublisher): void {
    const term = ++this.term;
    const schedule = () => {
      if (term !== this.term) return;
      const s = this.read();
      const due = Math.max(s.step ? 0 : s.rotatedAt + this.rotationMs, this.retryAt);
      this.timer = timerAt(due, () =>
        void this.rotate(publish, term)
          .catch((err: unknown) => {
            this.retryAt = Date.now() + RETRY_MS;
            this.log(`overlay keys: rotation halted (tried again in ${RETRY_MS / 1000} s): ${err instanceof Error ? err.message : String(err)}`);
          })
          .finally(schedule),
      );
    };
    schedule();
  }

  stop(): void {
    this.term++;
    this.timer?.clear();
  }

  /** One whole rotation (or the rest of one under way); one term's timer's only, so never two at once. */
  private async rotate(publish: KeyPublisher, term: number): Promise<void> {
    let s = this.read();
    if (!s.step) {
      const id = (Math.max(...s.keys.map((k) => k.id)) % 0xffff) + 1;
      s = { ...s, keys: [...s.keys, newKey(id)], step: "added" };
      await this.save(s);
      this.log(`overlay keys: key ${id} added; waiting for every node to hold it`);
      await publish(this.current());
    }
    if (term !== this.term) return;
    if (s.step === "added") {
      s = { ...s, txKeyId: s.keys[s.keys.length - 1]!.id, step: "switched" };
      await this.save(s);
      this.log(`overlay keys: sending with key ${s.txKeyId}`);
      await publish(this.current());
    }
    if (term !== this.term) return;
    s = { keys: s.keys.filter((k) => k.id === s.txKeyId), txKeyId: s.txKeyId, rotatedAt: Date.now() };
    await this.save(s);
    this.log(`overlay keys: rotated; only key ${s.txKeyId} remains`);
    await publish(this.current());
  }

  private read(): Stored {
    return JSON.parse(this.settings.get(OVERLAY_KEYS_SETTING)!) as Stored;
  }

  private save(s: Stored): Promise<void> {
    return this.settings.set(OVERLAY_KEYS_SETTING, JSON.stringify(s));
  }
}

const newKey = (id: number): OverlayKey => ({ id, secret: randomBytes(OVERLAY_KEY_BYTES).toString("hex") });
