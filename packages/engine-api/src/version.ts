// The versions the Engine API speaks and reports.

import { readFileSync } from "node:fs";

/** What we advertise (Api-Version, /version): Docker 27.x's API, which the swarm routes here follow. */
export const API_VERSION = "1.47";
/** The oldest and newest /vNN prefixes accepted: docker 28.x clients ask for up to 1.50 before negotiating down. */
export const MIN_API_VERSION = "1.24";
export const MAX_API_VERSION = "1.50";

/** vipmesh's own version (the Server header, /version's Version, a node's EngineVersion). */
export const VIPMESH_VERSION: string = (JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string }).version;

/** -1, 0 or 1 as `a` is older than, equal to or newer than `b` ("1.9" < "1.24"). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}
