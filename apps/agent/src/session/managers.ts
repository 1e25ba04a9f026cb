// Which manager an agent dials: the addresses it was given (--manager), then
// those the cluster told it (kept in the state dir, so that a restarted agent
// knows them even when every given one is gone), tried round robin: a lost
// session or a failed Register moves on to the next one.

import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** In the agent's state dir: the managers' addresses the cluster last sent. */
export const MANAGERS_FILE = "managers.json";

export class ManagerAddresses {
  private learned: string[] = [];
  private index = 0;

  /** `given`: at least one address; `stateDir`: where the learned ones are kept (none: memory only). */
  constructor(
    private readonly given: readonly string[],
    private readonly stateDir?: string,
  ) {
    if (given.length === 0) throw new Error("an agent needs at least one manager address");
    if (stateDir) this.learned = readLearned(join(stateDir, MANAGERS_FILE));
  }

  /** Every address to try, in turn: the given ones first, each once. */
  get all(): string[] {
    return [...new Set([...this.given, ...this.learned])];
  }

  /** The one to dial now. */
  get current(): string {
    const all = this.all;
    return all[this.index % all.length]!;
  }

  /** Moves on to the next address (round robin) and returns it. */
  next(): string {
    this.index = (this.index + 1) % this.all.length;
    return this.current;
  }

  /**
   * The cluster's current list (empty addresses, of managers that listen
   * only on a socket, left out): it replaces the one learned before and is
   * kept in the state dir (throws if it cannot be: the list is taken all the
   * same). The address dialed now stays current if it is still listed.
   * Returns whether the list changed.
   */
  learn(addrs: readonly string[]): boolean {
    const fresh = [...new Set(addrs.filter((a) => a !== ""))];
    if (fresh.length === this.learned.length && fresh.every((a, i) => a === this.learned[i])) return false;
    const dialed = this.current;
    this.learned = fresh;
    const at = this.all.indexOf(dialed);
    this.index = at >= 0 ? at : this.index % this.all.length;
    if (this.stateDir) writeLearned(join(this.stateDir, MANAGERS_FILE), fresh);
    return true;
  }
}

function readLearned(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return []; // never told yet
  }
  try {
    const { managers } = JSON.parse(text) as { managers?: unknown };
    return Array.isArray(managers) ? managers.filter((a): a is string => typeof a === "string" && a !== "") : [];
  } catch {
    return []; // unreadable: the given ones will do, and the cluster sends its list again
  }
}

/** Written whole, then renamed over the old one: a crash leaves either list, never half of one. */
function writeLearned(file: string, managers: readonly string[]): void {
  const tmp = `${file}.tmp`;
  writeFileSync(tmp, `${JSON.stringify({ managers }, null, 2)}\n`);
  renameSync(tmp, file);
}
