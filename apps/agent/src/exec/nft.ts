// nft scripts: every vipmesh table is replaced whole in one transaction, and
// loaded with `nft -f -` in the namespace it belongs to.

import { runIn } from "./run.ts";

/**
 * `add table; delete table; table {…}` in one file is one transaction: the
 * table is replaced atomically (the `add` lets the `delete` succeed on a fresh
 * namespace), and established connections keep their conntrack NAT.
 */
export const replaceTableScript = (name: string, body: string[]): string =>
  [`add table ip ${name}`, `delete table ip ${name}`, `table ip ${name} {`, ...body, "}", ""].join("\n");

/** Deletes a table whether or not it is there, in one transaction. */
export const deleteTableScript = (name: string): string => `add table ip ${name}\ndelete table ip ${name}\n`;

/** Loads a script in `netns` (undefined: this namespace). */
export const loadNft = (netns: string | undefined, script: string): Promise<string> => runIn(netns, ["nft", "-f", "-"], { input: script });

/**
 * Loads `delta`, a change against what the table is thought to hold ("":
 * nothing to do); without one, or when it fails (the table is not what was
 * thought), loads the table whole.
 */
export async function loadDeltaElseWhole(netns: string | undefined, delta: string | undefined, whole: () => string): Promise<void> {
  if (delta === "") return;
  if (delta !== undefined) {
    try {
      await loadNft(netns, delta);
      return;
    } catch {
      // the table is not what we thought: load it whole
    }
  }
  await loadNft(netns, whole());
}
