// Docker's `filters` query parameter and the matching rules every list route shares.

import { HttpError } from "./http.ts";

/**
 * The filters query parameter (`{"label":{"a=b":true}}`, or the old
 * `{"label":["a=b"]}`) as name → values; 400 when malformed or for a filter
 * not in `known` (Docker's "invalid filter"), so a typo never lists everything.
 */
export function parseFilters(query: URLSearchParams, known: ReadonlySet<string>): Map<string, string[]> {
  const raw = query.get("filters");
  const out = new Map<string, string[]>();
  if (!raw) return out;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new HttpError(400, `invalid filters: ${raw} is not JSON`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw new HttpError(400, `invalid filters: ${raw} is not an object`);
  for (const [k, v] of Object.entries(parsed)) {
    if (!known.has(k)) throw new HttpError(400, `invalid filter '${k}'`);
    if (Array.isArray(v)) out.set(k, v.map(String));
    else if (typeof v === "object" && v !== null) out.set(k, Object.keys(v));
    else throw new HttpError(400, `invalid filters: the values of "${k}" must be a list or an object`);
  }
  return out;
}

/** Docker's label filter: each value "k" (the label is set) or "k=v"; every one must hold. Own labels only: "constructor" is no label. */
export function matchesLabels(labels: Record<string, string>, wanted: readonly string[] | undefined): boolean {
  return (wanted ?? []).every((w) => {
    const i = w.indexOf("=");
    const key = i < 0 ? w : w.slice(0, i);
    return Object.hasOwn(labels, key) && (i < 0 || labels[key] === w.slice(i + 1));
  });
}

/** Docker's name/id filters: any value is a prefix of (id) or contained in (name) — `docker network ls --filter name=web` matches "demo_web". */
export const matchesAny = (values: readonly string[] | undefined, test: (v: string) => boolean): boolean =>
  values === undefined || values.length === 0 || values.some(test);
