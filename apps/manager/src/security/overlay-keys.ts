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
const SETTING = "overlay-keys";

interface Stored extends OverlayKeySet {
  /** When the last rotation finished (or the first key was made), ms since the epoch. */
  rotatedAt: number;
  /** A rotation under way: the step it has reached. */
  step?: "added" | "switched";
}

/** Where keys go: resolves once every node that needs them applied them (or left). */
export type KeyPublisher = (keys: OverlayKeySet) => Promise<void>;

export class OverlayKeys {
  private state: Stored;
  private timer: Timer | undefined;
  private stopped = false;

  constructor(
    private readonly settings: Settings,
    private readonly rotationMs = DEFAULT_KEY_ROTATION_MS,
    private readonly log: (line: string) => void = () => {},
  ) {
    const stored = settings.get(SETTING);
    this.state = stored ? (JSON.parse(stored) as Stored) : { keys: [newKey(1)], txKeyId: 1, rotatedAt: Date.now() };
    if (!stored) this.save();
  }

  /** The keys nodes hold now. */
  current(): OverlayKeySet {
    return { keys: this.state.keys.map((k) => ({ ...k })), txKeyId: this.state.txKeyId };
  }

  /** Rotates on schedule (finishing first a rotation a restart interrupted), publishing each step. */
  start(publish: KeyPublisher): void {
    const schedule = () => {
      if (this.stopped) return;
      const due = this.state.step ? 0 : this.state.rotatedAt + this.rotationMs;
      this.timer = timerAt(due, () => void this.rotate(publish).finally(schedule));
    };
    schedule();
  }

  stop(): void {
    this.stopped = true;
    this.timer?.clear();
  }

  /** One whole rotation (or the rest of one under way); the timer's only, so never two at once. */
  private async rotate(publish: KeyPublisher): Promise<void> {
    const s = this.state;
    if (!s.step) {
      const id = (Math.max(...s.keys.map((k) => k.id)) % 0xffff) + 1;
      s.keys = [...s.keys, newKey(id)];
      s.step = "added";
      this.save();
      this.log(`overlay keys: key ${id} added; waiting for every node to hold it`);
      await publish(this.current());
    }
    if (this.stopped) return;
    if (s.step === "added") {
      s.txKeyId = s.keys[s.keys.length - 1]!.id;
      s.step = "switched";
      this.save();
      this.log(`overlay keys: sending with key ${s.txKeyId}`);
      await publish(this.current());
    }
    if (this.stopped) return;
    s.keys = s.keys.filter((k) => k.id === s.txKeyId);
    delete s.step;
    s.rotatedAt = Date.now();
    this.save();
    this.log(`overlay keys: rotated; only key ${s.txKeyId} remains`);
    await publish(this.current());
  }

  private save(): void {
    this.settings.set(SETTING, JSON.stringify(this.state));
  }
}

const newKey = (id: number): OverlayKey => ({ id, secret: randomBytes(OVERLAY_KEY_BYTES).toString("hex") });
