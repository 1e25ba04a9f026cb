// When each of the node's images was last used (by a task, or loaded), kept
// in the agent's state dir so that an agent restart does not reset the
// clock of the image GC. One small JSON file, replaced whole (rename).

import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const LAST_USE_FILE = "image-last-use.json";

export class ImageLastUse {
  private readonly file: string;
  /** Image name → last use, ms since the epoch. */
  private readonly times = new Map<string, number>();

  constructor(stateDir: string) {
    this.file = join(stateDir, LAST_USE_FILE);
    try {
      const saved = JSON.parse(readFileSync(this.file, "utf8")) as Record<string, unknown>;
      for (const [name, t] of Object.entries(saved)) if (typeof t === "number" && Number.isFinite(t)) this.times.set(name, t);
    } catch {} // none yet, or unreadable: every image counts as used now (the GC waits a full period)
  }

  get(name: string): number | undefined {
    return this.times.get(name);
  }

  /** Marks these images used at `at`; saves when something changed. */
  touch(names: Iterable<string>, at: number): void {
    let changed = false;
    for (const name of names) {
      if ((this.times.get(name) ?? -1) >= at) continue;
      this.times.set(name, at);
      changed = true;
    }
    if (changed) this.save();
  }

  /** Forgets images no longer on the node. */
  keepOnly(names: ReadonlySet<string>): void {
    let changed = false;
    for (const name of [...this.times.keys()]) {
      if (names.has(name)) continue;
      this.times.delete(name);
      changed = true;
    }
    if (changed) this.save();
  }

  private save(): void {
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, `${JSON.stringify(Object.fromEntries([...this.times].sort(([a], [b]) => a.localeCompare(b))))}\n`, { mode: 0o600 });
    renameSync(tmp, this.file);
  }
}
